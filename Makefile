# cfsboot: verified-boot initramfs for bootable containers.
#   make demo   build everything and boot the demo image in QEMU with swtpm
#   make test   every test tier: unit, privileged host, QEMU boots
#   make bench  throughput benchmarks (not part of make test)
SHELL := /bin/bash
CACHE ?= $(CURDIR)/.cache
BIN   ?= $(CURDIR)/bin
GO    ?= go
export GOFLAGS ?= -mod=mod

# Debian 12 packages the tests and the demo use.
APT_PACKAGES := qemu-system-x86 swtpm swtpm-tools ovmf erofs-utils fsverity \
	e2fsprogs libssl-dev busybox-static zstd xz-utils cpio openssl gcc \
	dosfstools xfsprogs fdisk kmod bc binutils systemd umoci skopeo

.PHONY: all build deps test test-unit test-qemu bench demo clean

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/cfsboot ./cmd/cfsboot
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o $(BIN)/cfsboot-init ./cmd/cfsboot-init

# Install missing apt packages (only when something is missing) and fetch the
# VM kernel and the systemd stub from Debian trixie into $(CACHE) without
# touching the machine's apt sources.
deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@qemu-tests/fetch-debs.sh $(CACHE)/debian 'linux-image-6\.12\..*-cloud-amd64$$' 'systemd-boot-efi$$' >/dev/null

test: deps test-unit test-qemu

# Unit tests, plus the privileged host tests when run as root (they skip,
# saying why, otherwise).
test-unit:
	$(GO) vet ./...
	$(GO) test -count=1 ./...

test-qemu: deps
	$(GO) test -count=1 -tags qemu -timeout 40m -v ./qemu-tests/ 2>&1 | tee $(CACHE)/qemu-test.log | grep -E '^(=== RUN|--- |PASS|FAIL|ok|\s+\S+_test.go)'; exit $${PIPESTATUS[0]}

bench: deps
	$(GO) test -run '^$$' -bench . -benchtime 3x ./verity/
	$(GO) test -run '^$$' -bench Import -benchtime 1x ./gen/oci/
	bench/image-create.sh

demo: deps build
	$(GO) test -count=1 -tags qemu -timeout 20m -v -run 'TestDemo' ./qemu-tests/

clean:
	rm -rf $(BIN) $(CACHE)/build
