#!/usr/bin/env python3
"""Fails when a public symbol of the library modules has no doc comment.

Reads the symbol graphs `swift package dump-symbol-graph --minimum-access-level public` wrote
(the folder is the first argument) for the modules of the library products. A symbol counts as
documented when it has a doc comment of its own or inherits one (`sourceOrigin`: a protocol
requirement's implementation such as `description` or `==`). Symbols without a source location
are synthesized by the compiler or come from a protocol extension of another module (`hashValue`,
`flatMap`) and are skipped. Prints each undocumented symbol as file:line: kind path.
"""
import glob
import json
import os
import sys

MODULES = ["RingBuffers", "MQTTProtocol", "UVReactor", "UVMQTT", "UVMQTTServiceLifecycle", "UVMQTTConfiguration"]


def main() -> int:
    folder = sys.argv[1]
    missing, total = [], 0
    for module in MODULES:
        files = [os.path.join(folder, f"{module}.symbols.json")] + sorted(glob.glob(os.path.join(folder, f"{module}@*.symbols.json")))
        if not os.path.exists(files[0]):
            print(f"no symbol graph for {module} in {folder}", file=sys.stderr)
            return 2
        for path in files:
            with open(path) as f:
                graph = json.load(f)
            for symbol in graph["symbols"]:
                if symbol.get("accessLevel") not in ("public", "open"):
                    continue
                location = symbol.get("location")
                if location is None:
                    continue
                total += 1
                doc = symbol.get("docComment", {}).get("lines", [])
                if any(line.get("text", "").strip() for line in doc) or "sourceOrigin" in symbol:
                    continue
                uri = location["uri"].removeprefix("file://")
                line = location.get("position", {}).get("line", 0) + 1
                missing.append(f"{os.path.relpath(uri)}:{line}: {symbol['kind']['identifier']} {'.'.join(symbol['pathComponents'])}")
    for entry in sorted(missing):
        print(entry)
    print(f"{total} public symbols in {', '.join(MODULES)}; {len(missing)} without a doc comment")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
