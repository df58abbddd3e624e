# opfsync — build, test, run. See README.md.
SHELL := /bin/bash
GO ?= go
GOROOT := $(shell $(GO) env GOROOT)
DIST := web/dist
# -B (no bounds checks) for the machine-translated SQLite only: README.md, "Bounds checks".
SQLITE_GCFLAGS := -gcflags=github.com/ncruces/go-sqlite3-wasm/v6=-B
WASM_FLAGS := -trimpath -ldflags='-s -w' $(SQLITE_GCFLAGS)
# Fuzz budgets are execution counts, about 5-10 s per target on 2 cores: a
# duration (-fuzztime=10s) hits Go 1.26's fuzz-coordinator race
# (go.dev/issue/75804, fixed in 1.27) that fails a run with a bare "context
# deadline exceeded" at the deadline. FUZZTIME=1m overrides every budget.
FUZZ_SLOW ?= 30000x
FUZZ_FAST ?= 200000x
fuzz1 = $(GO) test -run='^$$' -fuzz='^$(1)$$' -fuzztime=$(or $(FUZZTIME),$(3)) $(2)

.PHONY: all build wasm web server test test-go test-wasm-node test-wasm-smoke test-wasm-browser test-browser fuzz vet bench bench-go bench-profile soak soak-pg run screenshots icons clean

all: build

## build: the wasm engine, its loader and the JS client into web/dist/,
## and the sync server into bin/opfsync-server
build: wasm web server

wasm: $(DIST)/opfsync.wasm $(DIST)/wasm_exec.js

$(DIST)/opfsync.wasm: go.mod go.sum $(shell find wasm pkg -name '*.go' -not -name '*_test.go')
	@mkdir -p $(DIST)
	GOOS=js GOARCH=wasm $(GO) build $(WASM_FLAGS) -o $@ ./wasm
	@ls -l $@ | awk '{printf "built %s: %.1f MB\n", $$9, $$5/1e6}'

# The JS client sits next to opfsync.wasm and wasm_exec.js, so copying
# web/dist/ anywhere works (everything is loaded relative to opfsync.js).
WEB_FILES := $(DIST)/opfsync.js $(DIST)/opfsync-link.js $(DIST)/opfsync-worker.js $(DIST)/opfsync-io.js $(DIST)/opfsync.d.ts
web: $(WEB_FILES)

$(WEB_FILES): $(DIST)/%: web/%
	@mkdir -p $(DIST)
	cp $< $@

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
## module's bridge under Node, the browser suites, and short fuzz runs.
test: vet test-go test-wasm-node test-wasm-browser test-wasm-smoke test-browser fuzz

vet:
	$(GO) vet ./...
	GOOS=js GOARCH=wasm $(GO) vet ./wasm ./pkg/...

# The server's tests run once on each store: SQLite (the default of
# ./...) and PostgreSQL (a throwaway cluster that internal/pgtest starts).
# The long-offline backlog test again without -race: under the race
# detector (10x slower on the translated SQLite) it runs a smaller backlog
# and does not judge the heap.
test-go:
	$(GO) test -race -count=1 ./...
	OPFSYNC_TEST_STORE=postgres $(GO) test -race -count=1 ./pkg/syncserver
	$(GO) test -count=1 -run='^TestLongOfflineBacklogSyncsInBoundedBatches$$' ./tests/e2e

# The engine is platform-neutral: its own tests must also pass when compiled
# to js/wasm (run by Node through the toolchain's go_js_wasm_exec).
test-wasm-node:
	PATH="$(GOROOT)/lib/wasm:$$PATH" GOOS=js GOARCH=wasm $(GO) test -count=1 ./pkg/protocol ./pkg/syncengine

# The tests' npm packages (playwright-core, puppeteer-core), installed again
# whenever tests/package*.json change.
TEST_DEPS := tests/node_modules/.package-lock.json
$(TEST_DEPS): tests/package.json tests/package-lock.json
	npm ci --prefix tests --no-audit --no-fund --loglevel=error
	@touch $@

# The js/wasm Go tests again, inside a dedicated worker of headless Chromium
# (tests/wasmexec/go_js_wasm_chromium_exec): the OPFS VFS against real OPFS,
# the IndexedDB VFS against real IndexedDB, the engine and protocol tests in
# a browser; then a second browser process on the same profile reads what
# the first one wrote (on OPFS and on IndexedDB).
WASM_BROWSER_EXEC := $(CURDIR)/tests/wasmexec/go_js_wasm_chromium_exec
test-wasm-browser: $(TEST_DEPS)
	GOOS=js GOARCH=wasm $(GO) test -count=1 -exec=$(WASM_BROWSER_EXEC) ./wasm/... ./pkg/protocol ./pkg/syncengine
	@profile=$$(mktemp -d) && trap 'rm -rf "$$profile"' EXIT && for phase in write check; do \
		OPFSYNC_PERSIST_PHASE=$$phase GO_JS_WASM_CHROMIUM_PROFILE=$$profile GOOS=js GOARCH=wasm \
		$(GO) test -count=1 -p 1 -v -run='^TestPersistAcrossRunners$$' -exec=$(WASM_BROWSER_EXEC) ./wasm/internal/opfs ./wasm/internal/idb || exit 1; done

# The shipped module, run by Node: it registers the bridge and serves
# open (memory) / put / get / query / close as wasm/BRIDGE.md says.
test-wasm-smoke: wasm
	node tests/node/bridge-smoke.mjs $(GOROOT)/lib/wasm/wasm_exec.js $(DIST)/opfsync.wasm

# The browser tests: playwright-core drives the system Chromium
# (/usr/bin/chromium, or $$CHROMIUM) against the real server; see
# tests/browser/README.md.
test-browser: build $(TEST_DEPS)
	node --test tests/browser/

fuzz:
	$(call fuzz1,FuzzValidateWrite,./pkg/syncengine,$(FUZZ_SLOW))
	$(call fuzz1,FuzzApplyRemotePage,./pkg/syncengine,$(FUZZ_SLOW))
	$(call fuzz1,FuzzImportDump,./pkg/syncengine,$(FUZZ_SLOW))
	$(call fuzz1,FuzzParseHLC,./pkg/protocol,$(FUZZ_FAST))
	$(call fuzz1,FuzzFieldsCodec,./pkg/protocol,$(FUZZ_FAST))
	$(call fuzz1,FuzzDecodePullResponse,./pkg/protocol,$(FUZZ_FAST))
	$(call fuzz1,FuzzDecodePush,./pkg/syncserver,$(FUZZ_SLOW))
	$(call fuzz1,FuzzBridgeMessage,./wasm/internal/bridge,$(FUZZ_SLOW))

## bench: the browser benchmark (tests/bench/README.md): opfsync through its
## public API against @sqlite.org/sqlite-wasm (opfs-sahpool) and Dexie in
## headless system Chromium; prints a markdown table, writes bench-results/.
## bench-go: the native Go benchmarks of the engine. bench-profile: a CPU
## profile of the worker during one workload (PROFILE_EXPR, see the README).
BENCH_DEPS := tests/bench/node_modules/.package-lock.json
$(BENCH_DEPS): tests/bench/package.json tests/bench/package-lock.json
	npm ci --prefix tests/bench --no-audit --no-fund --loglevel=error
	@touch $@

bench: build $(BENCH_DEPS) $(TEST_DEPS)
	node tests/bench/run.mjs

bench-go:
	@mkdir -p bench-results
	$(GO) test -run='^$$' -bench=. -benchmem -count=5 ./pkg/syncengine | tee bench-results/go-bench.txt

PROFILE_EXPR ?= X.profileApplyPage()
bench-profile: build $(BENCH_DEPS)
	@mkdir -p bench-results
	GOOS=js GOARCH=wasm $(GO) build -trimpath $(SQLITE_GCFLAGS) -o bench-results/opfsync-names.wasm ./wasm
	node tests/bench/profile.mjs '$(PROFILE_EXPR)'

## soak: the load test of the real server binary on loopback
## (tests/soak/README.md): SOAK_CLIENTS simulated clients (200) for
## SOAK_DURATION (60s), then exactly-once, integrity and final-state checks;
## prints a markdown table, writes bench-results/soak.{md,json}; exit 1 on any
## error or mismatch. SOAK_FLAGS passes more flags (e.g. -keep, -seed N).
soak: server
	$(GO) run ./tests/soak -server bin/opfsync-server $(SOAK_FLAGS)

## soak-pg: the same load test on PostgreSQL (a throwaway local cluster,
## fsync on) with SOAK_INSTANCES server processes (1) sharing the database.
soak-pg: server
	$(GO) run ./tests/soak -server bin/opfsync-server -store postgres $(SOAK_FLAGS)

## run: build everything, then start the sync server on 127.0.0.1:8080 with
## the SQLite file data/opfsync.db, serving web/ at / (the demo at /demo/),
## and a development token (make run TOKEN=... to choose another; the demo
## asks for it in Settings). Ctrl-C stops it.
TOKEN ?= dev-token
ADDR ?= 127.0.0.1:8080
run: build
	@echo "opfsync demo:   http://$(ADDR)/demo/  (open it in two windows or browser profiles to see sync)"
	@echo "token:          $(TOKEN)  (the demo's default; change it in the demo's Settings)"
	@echo "opfsync-server: http://$(ADDR)/  (developer notes)"
	@echo "  try: curl -s http://$(ADDR)/healthz"
	@echo "       curl -s -H 'Authorization: Bearer $(TOKEN)' 'http://$(ADDR)/sync/pull'"
	exec bin/opfsync-server -addr $(ADDR) -db ./data/opfsync.db -static web -token $(TOKEN)

## screenshots: the demo's screenshots in docs/screenshots/ (headless system
## Chromium against the real server); icons: the demo's PNG icons from its SVG.
screenshots: build $(TEST_DEPS)
	node tests/browser/screenshots.mjs

icons: $(TEST_DEPS)
	node tests/browser/icons.mjs

clean:
	rm -rf $(DIST) bin
