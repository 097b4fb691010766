import CLibUV
import Testing
import UVReactor

@Suite struct UVErrorTests {
    @Test func namesLibuvErrors() {
        let error = UVError(UV_ECONNREFUSED.rawValue)
        #expect(error.name == "ECONNREFUSED")
        #expect(error.description.contains("refused"))
    }
}
