# opfsync — build, test, run. See README.md.
SHELL := /bin/bash
GO ?= go
GOROOT := $(shell $(GO) env GOROOT)
DIST := web/dist
WASM_FLAGS := -trimpath -ldflags='-s -w'
FUZZTIME ?= 10s

.PHONY: all build wasm server test test-go test-wasm-node test-wasm-smoke fuzz vet bench bench-go run clean

all: build

## build: the wasm engine and its loader into web/dist/, and the sync
## server into bin/opfsync-server
build: wasm server

wasm: $(DIST)/opfsync.wasm $(DIST)/wasm_exec.js

$(DIST)/opfsync.wasm: go.mod go.sum $(shell find wasm pkg -name '*.go' -not -name '*_test.go')
	@mkdir -p $(DIST)
	GOOS=js GOARCH=wasm $(GO) build $(WASM_FLAGS) -o $@ ./wasm
	@ls -l $@ | awk '{printf "built %s: %.1f MB\n", $$9, $$5/1e6}'

server: bin/opfsync-server

bin/opfsync-server: go.mod go.sum $(shell find cmd pkg -name '*.go' -not -name '*_test.go')
	@mkdir -p bin
	$(GO) build -trimpath -o $@ ./cmd/opfsync-server

# wasm_exec.js must come from the toolchain that built the wasm.
$(DIST)/wasm_exec.js: $(GOROOT)/lib/wasm/wasm_exec.js
	@mkdir -p $(DIST)
	cp $< $@

## test: every test there is — vet, native Go tests (race detector on), the
## engine's tests compiled to js/wasm and run under Node, the built wasm
## module's self-check, and short fuzz runs.
test: vet test-go test-wasm-node test-wasm-smoke fuzz

vet:
	$(GO) vet ./...
	GOOS=js GOARCH=wasm $(GO) vet ./wasm ./pkg/...

test-go:
	$(GO) test -race -count=1 ./...

# The engine is platform-neutral: its own tests must also pass when compiled
# to js/wasm (run by Node through the toolchain's go_js_wasm_exec).
test-wasm-node:
	PATH="$(GOROOT)/lib/wasm:$$PATH" GOOS=js GOARCH=wasm $(GO) test -count=1 ./pkg/protocol ./pkg/syncengine

# The shipped module starts the engine and proves a write/read round trip;
# under Node it then exits with a deadlock report (nothing keeps it alive,
# unlike in a worker), so only its output is checked.
test-wasm-smoke: wasm
	@out=$$(cd /tmp && timeout 120 node $(GOROOT)/lib/wasm/wasm_exec_node.js $(CURDIR)/$(DIST)/opfsync.wasm 2>&1 || true); \
	if echo "$$out" | grep -q '^opfsync: ready'; then echo "wasm self-check: $$(echo "$$out" | grep '^opfsync: ready')"; \
	else echo "wasm self-check failed:"; echo "$$out" | head -20; exit 1; fi

fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzValidateWrite$$' -fuzztime=$(FUZZTIME) ./pkg/syncengine
	$(GO) test -run='^$$' -fuzz='^FuzzApplyRemotePage$$' -fuzztime=$(FUZZTIME) ./pkg/syncengine
	$(GO) test -run='^$$' -fuzz='^FuzzParseHLC$$' -fuzztime=$(FUZZTIME) ./pkg/protocol

## bench: the benchmarks that exist so far (the browser suite comes with the
## performance issue); bench-go: the native Go benchmarks of the engine.
bench: bench-go

bench-go:
	@mkdir -p bench-results
	$(GO) test -run='^$$' -bench=. -benchmem -count=5 ./pkg/syncengine | tee bench-results/go-bench.txt

## run: build everything, then start the sync server on 127.0.0.1:8080 with
## the SQLite file data/opfsync.db, serving web/ at /, and a development
## token (make run TOKEN=... to choose another). Ctrl-C stops it.
TOKEN ?= dev-token
ADDR ?= 127.0.0.1:8080
run: build
	@echo "opfsync-server: http://$(ADDR)/  (development token: $(TOKEN))"
	@echo "  try: curl -s http://$(ADDR)/healthz"
	@echo "       curl -s -H 'Authorization: Bearer $(TOKEN)' 'http://$(ADDR)/sync/pull'"
	exec bin/opfsync-server -addr $(ADDR) -db ./data/opfsync.db -static web -token $(TOKEN)

clean:
	rm -rf $(DIST) bin
