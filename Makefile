# loop's Makefile documents itself: `make help` lists every target with its `## ` comment.
SHELL := /bin/bash
GO ?= go
BIN := bin/loop
GOLANGCI_VERSION := v2.15.0
export CGO_ENABLED ?= 0

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-12s %s\n", $$1, $$2}'

.PHONY: setup
setup: ## Get everything on a fresh Debian machine: Docker engine (started if none answers), busybox, tmux, the test node's containerd/runc/CNI, Go modules
	@bash scripts/setup.sh

# The sync agents loop embeds are committed (daemon/internal/agent/prebuilt), so that
# `go build ./cmd/loop` and `go install` work on a clean checkout; see docs/releasing.md.
AGENT_DIR := daemon/internal/agent/prebuilt

.PHONY: agent
agent: ## Rebuild the committed sync agents (linux/amd64, linux/arm64) from cmd/loop-agent; commit the result
	$(GO) generate ./daemon/internal/agent

.PHONY: check-agent
check-agent: ## Check the committed sync agents are byte for byte what their current sources build
	$(GO) run ./daemon/internal/agent/agentbuild/gen -check $(AGENT_DIR)

# What `loop version` reports; a build of one commit always carries the same values
# (DATE is the commit's time, not the build's), so builds stay reproducible.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null)
DATE ?= $(shell TZ=UTC0 git log -1 --date=format-local:%Y-%m-%dT%H:%M:%SZ --format=%cd 2>/dev/null)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.date=$(DATE)

.PHONY: build
build: agent ## Build bin/loop
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/loop

# The platforms `make release` ships. check-cross keeps the two that differ from the
# build machine in OS or architecture compiling (darwin/amd64 shares darwin/arm64's
# files; a cold build cache pays minutes per platform, so CI checks only these two).
RELEASE_TARGETS := linux/amd64 linux/arm64 darwin/amd64 darwin/arm64
CROSS_TARGETS := linux/arm64 darwin/arm64

.PHONY: release
release: check-agent ## Build dist/: a reproducible tar.gz per platform (loop, README, LICENSE), SPDX SBOMs, SHA256SUMS
	rm -rf dist
	$(GO) run ./internal/release -out dist -version '$(VERSION)' -commit '$(COMMIT)' -date '$(DATE)' -targets '$(RELEASE_TARGETS)'

.PHONY: check-cross
check-cross: ## Check loop still compiles for another OS and architecture (go vet for darwin/arm64, linux/arm64)
	@for t in $(CROSS_TARGETS); do \
		echo "go vet ./cmd/loop for $$t"; \
		GOOS=$${t%/*} GOARCH=$${t#*/} $(GO) vet -trimpath ./cmd/loop || exit 1; \
	done

.PHONY: test-cluster
test-cluster: ## Start (or reuse) the test Kubernetes cluster: etcd, kube-apiserver, controller-manager, scheduler, kwok, a real node (kubelet on containerd)
	@bash scripts/test-cluster.sh >/dev/null

# The kubeconfig scripts/test-cluster.sh writes; tests reach the cluster through it.
TEST_KUBECONFIG := $(or $(LOOP_TEST_CLUSTER_DIR),/tmp/loop-test-cluster)/kubeconfig

# The cheap checks run first: `build` rewrites the agents, after which check-agent
# could no longer see that they were stale.
.PHONY: test
test: check-agent check-cross ## Run every test: unit tests and integration tests on the real Docker engine and the test cluster
	@$(MAKE) --no-print-directory build test-cluster
	$(GO) vet ./...
	KUBECONFIG=$(TEST_KUBECONFIG) $(GO) test -count=1 -timeout 25m ./...

.PHONY: bench
bench: build ## Run the benchmark suite (a)–(f) and write its table into BENCHMARKS.md (ONLY=a,f runs a subset)
	$(GO) run ./internal/benchreport -o BENCHMARKS.md $(if $(ONLY),-only $(ONLY))

# Long reliability runs: not in CI. MODE=noloss (SEEDS seeds × OPS file operations
# compared with the container), MODE=leak (DURATION of edits on examples/compose,
# RSS/goroutines/open files sampled every EVERY), MODE=all (both).
SOAK_MODE ?= all
SEEDS ?= 20
OPS ?= 10000
DURATION ?= 1h
EVERY ?= 1m

.PHONY: soak
soak: ## Long no-loss run and resource soak (SOAK_MODE=noloss|leak|all, SEEDS=20 OPS=10000, DURATION=1h EVERY=1m)
	@set -o pipefail; if [ "$(SOAK_MODE)" != leak ]; then \
		LOOP_NOLOSS_SEEDS=$(SEEDS) LOOP_NOLOSS_OPS=$(OPS) LOOP_NOLOSS_CHECK=1000 \
			$(GO) test -count=1 -timeout 12h -run '^TestNoLostChanges$$' -v ./daemon | grep -v '^\s*harness_test.go' ; \
	fi
	@if [ "$(SOAK_MODE)" != noloss ]; then \
		LOOP_SOAK_DURATION=$(DURATION) LOOP_SOAK_EVERY=$(EVERY) LOOP_SOAK_OUT=$(CURDIR)/soak-samples.md \
			$(GO) test -count=1 -timeout 12h -run '^TestSoakResources$$' -v ./daemon ; \
	fi

.PHONY: bench-render
bench-render: ## Render time per fixture: in-process Kustomize/Helm against the CLIs (N=20 runs each)
	@bash scripts/bench-render.sh

.PHONY: bench-kube
bench-kube: test-cluster ## One saved file into a pod: held agent session vs one exec per save; loop up's save → file in the pod (test cluster)
	$(GO) test -count=1 -run '^$$' -bench '^BenchmarkKubeSave$$' -benchtime 3s ./daemon/internal/agent
	$(GO) test -count=1 -run '^$$' -bench '^BenchmarkKubeSaveToSynced$$' -benchtime 200x ./daemon

.PHONY: bench-pods
bench-pods: test-cluster ## The inner loop on the real node: P1-pod (save → served; held exec, exec per change), the same over a 25 ms link, P2-pod (Go save → new code; the compile)
	$(GO) test -count=1 -run '^$$' -bench '^(BenchmarkPodSaveToServed|BenchmarkPodSaveToServedRemote)$$' -benchtime 200x -timeout 30m ./daemon
	$(GO) test -count=1 -run '^$$' -bench '^BenchmarkPodGoSave$$' -benchtime 10x -timeout 30m ./daemon

.PHONY: lint
lint: ## golangci-lint with .golangci.yml (pinned version)
	$(GO) run github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_VERSION) run ./...

.PHONY: golden
golden: ## Rewrite golden files from the current output
	$(GO) test ./starlark/tiltfile -run Golden -update
	$(GO) test ./tui -run Golden -update

.PHONY: up
up: build ## Run `loop up` on examples/hello
	cd examples/hello && ../../$(BIN) up

.PHONY: clean
clean: ## Remove build output
	rm -rf bin dist
