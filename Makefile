# source-aws-billing: the commands a user and CI run. `make test` is the whole suite.
MUSL_TARGET := x86_64-unknown-linux-musl
STATIC_BIN  := target/$(MUSL_TARGET)/release/source-aws-billing
CARGO       ?= cargo

.PHONY: build test unit conformance lint demo static size image bench bench-smoke clean

build:
	$(CARGO) build

## Every test: Rust unit and integration tests (incl. the chroot scratch test when root),
## then the conformance suite (moto with IAM auth, the official CloudEvents SDK).
test: static
	$(CARGO) build --examples
	$(CARGO) test
	tests/conformance/run

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

## Build the real binary and run it against a local fixture Cost Explorer, printing the events.
demo:
	$(CARGO) build --bin source-aws-billing --example fake-cost-explorer
	tests/support/demo.sh

## A static, stripped musl binary (what the scratch image holds).
static:
	@rustup target list --installed 2>/dev/null | grep -qx $(MUSL_TARGET) || rustup target add $(MUSL_TARGET)
	@command -v musl-gcc >/dev/null || { echo "installing musl-tools (ring's C needs musl-gcc)"; \
		apt-get update -qq >/dev/null && apt-get install -y -qq musl-tools >/dev/null; }
	$(CARGO) build --release --locked --target $(MUSL_TARGET) --bin source-aws-billing
	@file $(STATIC_BIN) 2>/dev/null || true

size: static
	@stat -c '%s bytes  $(STATIC_BIN)' $(STATIC_BIN)

image:
	@if docker info >/dev/null 2>&1; then docker build -f Dockerfile.scratch -t source-aws-billing:latest .; \
	else echo "make image: no Docker engine here (docker info failed); build with: docker build -f Dockerfile.scratch ."; exit 1; fi

bench: static
	tests/bench/run

bench-smoke: static
	tests/bench/run --smoke

clean:
	$(CARGO) clean
