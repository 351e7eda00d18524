# source-aws-billing: the commands a user and CI run. `make test` is the whole suite.
MUSL_TARGET := x86_64-unknown-linux-musl
ARM_TARGET  := aarch64-unknown-linux-musl
STATIC_BIN  := target/$(MUSL_TARGET)/release/source-aws-billing
ARM_BIN     := target/$(ARM_TARGET)/release/source-aws-billing
CARGO       ?= cargo

# The image: staged binaries (the build context), buildah's private storage, the OCI archive.
IMAGE_DIR   := target/image
CONTEXT     := $(IMAGE_DIR)/context
OCI_ARCHIVE := $(IMAGE_DIR)/source-aws-billing.oci.tar
IMAGE_NAME  ?= source-aws-billing
VERSION     := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
# Image and file times: the last commit's, so the same binaries give the same image digests.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
# vfs: works on any filesystem and in any container, no overlay or fuse needed; a private
# root under target/ leaves /var/lib/containers alone (and `make clean` removes it).
BUILDAH     := buildah --root $(abspath $(IMAGE_DIR))/storage --runroot $(abspath $(IMAGE_DIR))/run --storage-driver vfs

# How the x86_64 static binary is linked (tests/bench/README.md, Size), for that target only: its relative
# relocations packed as DT_RELR (musl applies them at start; it stays static-pie), linked by
# the toolchain's own lld (rustup ships it; GNU ld where it is missing) with identical code
# folding.
, := ,
RUST_HOST   := $(shell rustc -vV 2>/dev/null | sed -n 's/^host: //p')
GCC_LD      := $(shell rustc --print sysroot 2>/dev/null)/lib/rustlib/$(RUST_HOST)/bin/gcc-ld
LLD_FLAGS   := $(if $(wildcard $(GCC_LD)/ld.lld),-C link-arg=-B$(GCC_LD) -C link-arg=-fuse-ld=lld -C link-arg=-Wl$(,)--icf=all)
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_RUSTFLAGS := -C link-arg=-Wl,-z,pack-relative-relocs $(LLD_FLAGS)

# A test that calls make runs with cargo's CARGO_PKG_* and CARGO_MANIFEST_* set, and ring's
# build script reruns when CARGO_PKG_VERSION_PRE changes: keep them out of the recipes, or
# every `make static` from a test would rebuild the release binaries from scratch.
unexport $(filter CARGO_PKG_% CARGO_MANIFEST_%,$(.VARIABLES))

# $(call need,COMMAND,DEBIAN PACKAGES): apt-get install the packages when the command is missing.
need = command -v $(1) >/dev/null || $(call apt,$(2))
apt = { echo "installing $(1)"; \
	export DEBIAN_FRONTEND=noninteractive; \
	apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null && \
	apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $(1) >/dev/null; }
# $(call target,TRIPLE): rustup target add when missing.
target = rustup target list --installed 2>/dev/null | grep -qx $(1) || rustup target add $(1)

.PHONY: build test unit conformance lint demo static static-arm64 size image image-context bench bench-smoke clean

build:
	$(CARGO) build

## Every test: Rust unit and integration tests (incl. the chroot scratch test and the image
## test when root; tests/image.rs runs `make image` itself, so a non-root run skips it
## instead of failing here), then the conformance suite (moto with IAM auth, the official
## CloudEvents SDK).
test: static
	$(CARGO) build --examples
	$(CARGO) test
	tests/conformance/run

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

## Build the real binary and run it against a local fixture Cost Explorer, printing the events:
## only the events on stdout (one JSON line each), the build and the logs on stderr; the
## build goes where CARGO_TARGET_DIR says (target/ without it).
demo:
	@$(CARGO) build --bin source-aws-billing --example fake-cost-explorer >&2
	@tests/support/demo.sh

## A static, stripped musl binary for x86_64 (what the amd64 image holds).
static:
	@$(call target,$(MUSL_TARGET))
	@$(call need,musl-gcc,musl-tools)   # ring's C and assembly for the musl target
	$(CARGO) build --release --locked --target $(MUSL_TARGET) --bin source-aws-billing
	@file $(STATIC_BIN) 2>/dev/null || true

## The same for aarch64 (what the arm64 image holds). Debian's cross gcc compiles ring's C
## and drives the link; Rust's musl target brings its own crt objects and libc.a, so the
## result is a static musl binary although the cross toolchain is glibc's.
static-arm64: export CC_aarch64_unknown_linux_musl := aarch64-linux-gnu-gcc
static-arm64: export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER := aarch64-linux-gnu-gcc
static-arm64:
	@$(call target,$(ARM_TARGET))
	@command -v aarch64-linux-gnu-gcc >/dev/null && test -e /usr/aarch64-linux-gnu/include/stdint.h \
		|| $(call apt,gcc-aarch64-linux-gnu libc6-dev-arm64-cross)   # the C headers ring includes
	$(CARGO) build --release --locked --target $(ARM_TARGET) --bin source-aws-billing
	@file $(ARM_BIN) 2>/dev/null || true

size: static static-arm64
	@stat -c '%s bytes  $(STATIC_BIN)' $(STATIC_BIN)
	@stat -c '%s bytes  $(ARM_BIN)' $(ARM_BIN)

## The multi-arch image (linux/amd64 + linux/arm64) as one OCI archive holding the index,
## built by buildah from Dockerfile.scratch and the two static binaries.
image: image-context
	@$(call need,buildah,buildah)
	@$(call need,skopeo,skopeo)
	rm -f $(OCI_ARCHIVE)
	-@$(BUILDAH) rmi --all --force >/dev/null 2>&1
	BUILDAH_ISOLATION=chroot $(BUILDAH) build --quiet --timestamp $(SOURCE_DATE_EPOCH) \
		--manifest $(IMAGE_NAME):$(VERSION) --platform linux/amd64,linux/arm64 -f Dockerfile.scratch $(CONTEXT)
	$(BUILDAH) manifest push --quiet --all --format oci $(IMAGE_NAME):$(VERSION) \
		oci-archive:$(OCI_ARCHIVE):$(IMAGE_NAME):$(VERSION)
	@sha256sum $(STATIC_BIN) $(ARM_BIN) $(OCI_ARCHIVE)
	@echo "image index digest (the same for the same binaries and commit; what a registry shows):"
	@echo "  sha256:$$(skopeo inspect --raw oci-archive:$(OCI_ARCHIVE) | sha256sum | cut -d' ' -f1)"
	@echo
	@echo "$(OCI_ARCHIVE): $(IMAGE_NAME):$(VERSION) for linux/amd64 and linux/arm64. Next:"
	@echo "  push both:    skopeo copy --all oci-archive:$(OCI_ARCHIVE) docker://REGISTRY/$(IMAGE_NAME):$(VERSION)"
	@echo "  podman:       podman load -i $(OCI_ARCHIVE)   (the host's architecture)"
	@echo "  docker (one): skopeo copy --override-arch amd64 oci-archive:$(OCI_ARCHIVE) docker-archive:$(IMAGE_DIR)/amd64.tar:$(IMAGE_NAME):$(VERSION)"
	@echo "                docker load -i $(IMAGE_DIR)/amd64.tar   (arm64: --override-arch arm64)"

## The build context Dockerfile.scratch reads: amd64/ and arm64/ with each binary, an empty
## data/. (Where a Docker engine runs: docker buildx build --platform linux/amd64,linux/arm64
## -f Dockerfile.scratch target/image/context.)
image-context: static static-arm64
	rm -rf $(CONTEXT)
	mkdir -p $(CONTEXT)/amd64 $(CONTEXT)/arm64 $(CONTEXT)/data
	install -m 0755 $(STATIC_BIN) $(CONTEXT)/amd64/source-aws-billing
	install -m 0755 $(ARM_BIN) $(CONTEXT)/arm64/source-aws-billing

bench: static
	tests/bench/run

bench-smoke: static
	tests/bench/run --smoke

clean:
	-$(BUILDAH) rm --all >/dev/null 2>&1
	-$(BUILDAH) rmi --all --force >/dev/null 2>&1
	$(CARGO) clean
