# relctl — make targets named in README.md.
GO       ?= go
PKGS     ?= ./...
BIN      ?= bin/relctl
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X github.com/relctl/relctl/internal/cli.Version=$(VERSION)

.PHONY: all build test lint bench bench-floor bench-scale fuzz e2e figures demo ci clean

all: lint test build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/relctl

# Unit and integration tests (integration tests start real sshd, HAProxy and
# nginx on 127.0.0.x when they are installed; in CI they must be).
test:
	$(GO) vet $(PKGS)
	$(GO) test -race -count=1 -timeout 30m $(PKGS)

# The proof on real parts only (also part of `make test`): real sshd hosts,
# HAProxy and nginx, traffic during every scenario.
e2e:
	$(GO) test -race -count=1 -timeout 30m -v ./e2e/

# Rerun the load scenarios and write their figures table (for README.md).
figures:
	E2E_FIGURES=$(CURDIR)/e2e/FIGURES.md $(GO) test -count=1 -run 'TestLoad|TestMigrationFails|TestSSHDKilled' ./e2e/

# relctl against the shell-loop floor on real sshd + HAProxy, as the hosts
# are, with a 0.2 s start-up cost per SSH session, and with 25 ms of one-way
# network delay (BENCHMARKS.md). BENCHTIME=1x for a quicker single run.
BENCHTIME ?= 3x
bench-floor:
	$(GO) test ./e2e -run '^$$' -bench UpgradeVsFloor -benchtime $(BENCHTIME) -timeout 60m

# relctl against 100 and 1,000 in-process SSH hosts (writes ~40 GB, removed after).
bench-scale:
	$(GO) test ./e2e -run '^$$' -bench Scale -benchtime 1x -timeout 30m

demo:
	$(GO) run ./cmd/relctl demo

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 $(PKGS)

# A short fuzzing session for the inventory loader (its seed corpus runs in `make test`).
fuzz:
	$(GO) test ./internal/fleet -run '^$$' -fuzz FuzzParse -fuzztime 60s

ci: lint test

clean:
	rm -rf bin
