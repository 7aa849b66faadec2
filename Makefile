# loop's Makefile documents itself: `make help` lists every target with its `## ` comment.
SHELL := /bin/bash
GO ?= go
BIN := bin/loop
GOLANGCI_VERSION := v2.15.0
export CGO_ENABLED ?= 0

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-10s %s\n", $$1, $$2}'

.PHONY: setup
setup: ## Get everything on a fresh Debian machine: Docker engine (started if none answers), busybox, tmux, Go modules
	@bash scripts/setup.sh

.PHONY: agent
agent: ## Build the static in-container sync agent for linux/amd64 and linux/arm64 (embedded into loop)
	$(GO) generate ./daemon/internal/agent

.PHONY: build
build: agent ## Build bin/loop
	$(GO) build -trimpath -o $(BIN) ./cmd/loop

.PHONY: test
test: build ## Run every test: unit tests and integration tests on the real Docker engine
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 25m ./...

.PHONY: bench
bench: build ## Run the benchmark suite (a)–(f) and write its table into BENCHMARKS.md (ONLY=a,f runs a subset)
	$(GO) run ./internal/benchreport -o BENCHMARKS.md $(if $(ONLY),-only $(ONLY))

.PHONY: lint
lint: ## golangci-lint with .golangci.yml (pinned version)
	$(GO) run github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_VERSION) run ./...

.PHONY: golden
golden: ## Rewrite golden files from the current output
	$(GO) test ./starlark/... -run Golden -update
	$(GO) test ./tui/... -run Golden -update

.PHONY: up
up: build ## Run `loop up` on examples/hello
	cd examples/hello && ../../$(BIN) up

.PHONY: clean
clean: ## Remove build output
	rm -rf bin
