# knet: the two commands a fresh machine needs are `go run ./cmd/knet tour` and `make test`.
GO ?= go

.PHONY: all build test test-unit deps bench fuzz tour

all: build

build:
	$(GO) build -o bin/knet ./cmd/knet

tour:
	$(GO) run ./cmd/knet tour

# deps installs the system packages the kernel and lab tests need (root, Debian).
deps:
	./scripts/install-test-deps.sh

# test runs every test: unit, golden, fuzz seeds, the kube-proxy oracle and the kernel lab.
test: deps
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 40m ./...
	cd oracle && $(GO) test -count=1 -timeout 30m ./...
	cd livetest && $(GO) test -count=1 -timeout 20m ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...
