# swift-uv-mqtt: the two commands a user needs are `make demo` and `make test`.
SHELL := /bin/bash
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := libuv1-dev libssl-dev mosquitto openssl pkg-config python3-venv
# amqtt (PyPI), the Python broker of the interop tests, in a venv of its own under .build.
AMQTT_VENV := .build/amqtt-venv
AMQTT_VERSION := 0.12.1
SWIFT_FLAGS ?= -Xswiftc -warnings-as-errors

.PHONY: deps build test docs doc-coverage example example-test demo test-asan test-tsan fuzz bench-core bench-client mqtt clean

# Installs what is missing (Debian packages), with sudo only when not root.
deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi
	@[ -x $(AMQTT_VENV)/bin/amqtt ] || { echo "installing amqtt $(AMQTT_VERSION) into $(AMQTT_VENV)"; \
	  python3 -m venv $(AMQTT_VENV) && $(AMQTT_VENV)/bin/pip install -q amqtt==$(AMQTT_VERSION); }
	@# The Debian package may start a system broker; the tests start their own on free ports.
	@command -v systemctl >/dev/null && $(SUDO) systemctl disable --now mosquitto >/dev/null 2>&1 || true

build: deps
	swift build $(SWIFT_FLAGS)

# Two runs of the one test binary: the pure protocol tests (CPU-bound property tests) first,
# then the I/O tests alone. In one run the property tests held both cooperative threads of a
# 2-core machine for seconds (20 s and more under load), and the timing-sensitive I/O tests
# (keepalive, timers, reconnects) waited that long for a thread. Both runs must pass.
# A third run holds the suites that measure the whole process (threads, fds, VmSize over
# hundreds of client or loop lifetimes): beside other suites in the same process, their
# baselines moved with the other tests' threads and buffers.
PROCESS_SUITES := ^(UVMQTTTests\.LifecycleTests|UVReactorTests\.EventLoopLifetimeTests)
# The scale test (5,000 connections, RSS and fds per connection) runs alone: its thousands of
# sockets would move the other process suites' baselines, and theirs its own.
SCALE_SUITES := ^UVMQTTTests\.ScaleTests
test: deps
	swift build --build-tests $(SWIFT_FLAGS)
	swift test --skip-build --disable-xctest --filter '^MQTTProtocolTests\.'
	swift test --skip-build --disable-xctest --skip '^MQTTProtocolTests\.' --skip '$(PROCESS_SUITES)' --skip '$(SCALE_SUITES)'
	swift test --skip-build --disable-xctest --filter '$(PROCESS_SUITES)'
	swift test --skip-build --disable-xctest --filter '$(SCALE_SUITES)'

# The DocC catalog of UVMQTT (Sources/UVMQTT/Documentation.docc), warnings as errors, into
# .build-docs/UVMQTT.doccarchive (own scratch folder: the plugin changes the package graph),
# then the check that every public symbol of the library modules has a doc comment.
DOCS_DIR := .build-docs
docs: doc-coverage
	UVMQTT_DOCS=1 swift package --scratch-path $(DOCS_DIR) --allow-writing-to-directory $(DOCS_DIR) \
	  generate-documentation --target UVMQTT --warnings-as-errors --output-path $(DOCS_DIR)/UVMQTT.doccarchive \
	  --transform-for-static-hosting --hosting-base-path swift-uv-mqtt

# Symbol graphs of the public API (in .build, as `make test` builds it), then
# scripts/check-doc-coverage.py: lists each undocumented public symbol and fails.
doc-coverage:
	swift package dump-symbol-graph --minimum-access-level public >/dev/null
	python3 scripts/check-doc-coverage.py "$$(swift build --show-bin-path)/../symbolgraph"

# The example daemon (Examples/SensorGateway, its own package) and its integration test (own
# mosquitto on a free loopback port; publishes with this package's `mqtt` tool, built here).
example: deps
	cd Examples/SensorGateway && swift build $(SWIFT_FLAGS)
example-test: example
	swift build --product mqtt $(SWIFT_FLAGS)
	MQTT_TOOL="$$(swift build --show-bin-path)/mqtt" Examples/SensorGateway/scripts/integration-test.sh

# Builds the demo, starts a local mosquitto on a free loopback port (own config, stopped
# afterwards) and runs the README's first example against it.
demo: deps
	swift build --product Demo $(SWIFT_FLAGS)
	scripts/demo-broker.sh "$$(swift build --show-bin-path)/Demo" 127.0.0.1

# Sanitizer runs in their own build folders. FILTER is a `swift test --filter` regular expression
# (quoted here, so `FILTER='UVReactorTests|UVMQTTTests'` works); without it every test runs.
# SKIP, likewise, leaves tests out (`swift test --skip`).
SANITIZER_FILTER = $(if $(FILTER),--filter '$(FILTER)') $(if $(SKIP),--skip '$(SKIP)')

test-asan: deps
	swift test --disable-xctest --sanitize=address --scratch-path .build-asan $(SANITIZER_FILTER)

# Fails on any ThreadSanitizer report: the test binary then exits non-zero (TSan's exitcode=66,
# checked with a deliberately racy test), and, should a report ever come from a child process or
# be swallowed, the log is searched for "WARNING: ThreadSanitizer" too. The log stays in
# .build-tsan/test.log.
TSAN_LOG := .build-tsan/test.log
test-tsan: deps
	swift build --build-tests --sanitize=thread --scratch-path .build-tsan
	set -o pipefail; status=0; \
	TSAN_OPTIONS="$${TSAN_OPTIONS:+$$TSAN_OPTIONS:}exitcode=66" \
	  swift test --skip-build --disable-xctest --sanitize=thread --scratch-path .build-tsan \
	  $(SANITIZER_FILTER) 2>&1 | tee $(TSAN_LOG) || status=$$?; \
	reports=$$(grep -c 'WARNING: ThreadSanitizer' $(TSAN_LOG) || true); \
	if [ "$$reports" != 0 ]; then \
	  echo "ThreadSanitizer reported $$reports problem(s) (the tests themselves may have passed): see $(TSAN_LOG)"; exit 1; \
	fi; \
	exit $$status

# libFuzzer target for the packet decoder (Fuzz/MQTTDecoderFuzz.swift), with a WebSocket-framed
# mode (the pure frame decoder of Sources/UVReactor/WebSocket is compiled in). Built with swiftc directly,
# not by SwiftPM, so that normal builds never see a target whose main() comes from libFuzzer.
# FUZZ_TIME=seconds (default 180); new inputs go to .build-fuzz/corpus (created here, so it works
# from a clean checkout), crashes to .build-fuzz/crash-* (and libFuzzer exits non-zero).
FUZZ_DIR := .build-fuzz
FUZZ_TIME ?= 180
FUZZ_SWIFTC := swiftc -O -wmo -sanitize=fuzzer,address -parse-as-library -use-ld=lld
fuzz:
	@mkdir -p $(FUZZ_DIR)/corpus
	cd $(FUZZ_DIR) && $(FUZZ_SWIFTC) -emit-module -emit-library -static -module-name RingBuffers \
	  ../Sources/RingBuffers/*.swift -o libRingBuffers.a
	cd $(FUZZ_DIR) && $(FUZZ_SWIFTC) -enable-upcoming-feature InternalImportsByDefault -I . \
	  -emit-module -emit-library -static -module-name MQTTProtocol \
	  $$(find ../Sources/MQTTProtocol -name '*.swift' | sort) -o libMQTTProtocol.a
	cd $(FUZZ_DIR) && $(FUZZ_SWIFTC) -I . -L . -lMQTTProtocol -lRingBuffers \
	  ../Fuzz/MQTTDecoderFuzz.swift ../Sources/UVReactor/WebSocket/WebSocketFrameDecoder.swift \
	  ../Sources/UVReactor/WebSocket/WebSocketError.swift -o mqtt-decoder-fuzz
	cd $(FUZZ_DIR) && ./mqtt-decoder-fuzz -max_total_time=$(FUZZ_TIME) -max_len=4096 \
	  -print_final_stats=1 corpus ../Fuzz/seeds

# Protocol-core benchmarks (Benchmarks/, its own package: ordo-one/benchmark).
bench-core:
	cd Benchmarks && swift package --allow-writing-to-package-directory benchmark --target ProtocolCoreBenchmarks

# The command-line tool, release build with the Swift runtime linked statically (about 12 MiB
# resident instead of ~19: docs/benchmarks.md): .build/release/mqtt.
mqtt: deps
	swift build -c release --static-swift-stdlib --product mqtt $(SWIFT_FLAGS)

# End-to-end client throughput against an in-process fake broker (Benchmarks/, allocations per message).
bench-client:
	cd Benchmarks && swift package --allow-writing-to-package-directory benchmark --target ClientThroughputBenchmarks

clean:
	rm -rf .build .build-*
