# swift-uv-mqtt: the two commands a user needs are `make demo` and `make test`.
SHELL := /bin/bash
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := libuv1-dev libssl-dev mosquitto openssl pkg-config
SWIFT_FLAGS ?= -Xswiftc -warnings-as-errors

.PHONY: deps build test demo test-asan test-tsan fuzz bench clean

# Installs what is missing (Debian packages), with sudo only when not root.
deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi
	@# The Debian package may start a system broker; the tests start their own on free ports.
	@command -v systemctl >/dev/null && $(SUDO) systemctl disable --now mosquitto >/dev/null 2>&1 || true

build: deps
	swift build $(SWIFT_FLAGS)

test: deps
	swift build --build-tests $(SWIFT_FLAGS)
	swift test --skip-build --disable-xctest

# Builds the demo, starts a local mosquitto on a free loopback port (own config, stopped
# afterwards) and runs the README's first example against it.
demo: deps
	swift build --product Demo $(SWIFT_FLAGS)
	scripts/demo-broker.sh "$$(swift build --show-bin-path)/Demo" 127.0.0.1

test-asan: deps
	swift test --disable-xctest --sanitize=address --scratch-path .build-asan

test-tsan: deps
	swift test --disable-xctest --sanitize=thread --scratch-path .build-tsan

clean:
	rm -rf .build .build-*
