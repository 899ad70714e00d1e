# umlswitch: a userspace Ethernet switch for User Mode Linux, VDE and QEMU.
# `make help` lists the targets; `make test` is what CI runs (.ci/run).

GO       ?= go
BIN      ?= bin/umlswitch
BENCH    ?= bin/umlswitch-bench
FUZZTIME ?= 5s

.DEFAULT_GOAL := help
.PHONY: help build run deps test vet fmt-check unit race fuzz e2e bench-smoke bench soak readme clean

help: ## list the targets
	@grep -E '^[a-z][a-z-]*:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

# -s -w: no symbol table or DWARF (stack traces and profiles keep their
# names); LDFLAGS= keeps them for a debugger.
LDFLAGS  ?= -s -w

build: ## build bin/umlswitch and the load generator bin/umlswitch-bench, statically linked
	CGO_ENABLED=0 $(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/umlswitch
	CGO_ENABLED=0 $(GO) build -ldflags '$(LDFLAGS)' -o $(BENCH) ./cmd/umlswitch-bench

run: build ## run the switch on its built-in configuration (root: it listens in /var/run)
	./$(BIN)

deps: ## stop unless the tests' Debian packages are here (scripts/deps); as root with apt-get, install them first, unless UMLSWITCH_NO_INSTALL is set
	@scripts/deps ensure

test: deps vet fmt-check unit race fuzz e2e bench-smoke ## everything CI runs, deps first

vet: ## go vet
	$(GO) vet ./...

fmt-check: ## fail if gofmt would change a file
	@files=$$(gofmt -l $$(find . -name '*.go' -not -path './.git/*')); \
	if [ -n "$$files" ]; then echo "gofmt needed:"; echo "$$files"; exit 1; fi

unit: ## unit and real-socket tests of every package (tap tests need root)
	$(GO) test -count=1 ./...

race: ## the switching core and the transports under the race detector
	$(GO) test -race -count=1 ./fabric/... ./transports/... ./tunnel/... ./internal/... ./instance/... ./api/... ./metrics/... ./impair/...

fuzz: ## every fuzz target, FUZZTIME each
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$target"; \
	    GO=$(GO) scripts/fuzz-one $$pkg $$target $(FUZZTIME); \
	  done; \
	done

e2e: ## real UML kernels, VDE tools and host taps (root, user-mode-linux, busybox-static, vde2)
	$(GO) test -count=1 -timeout 20m ./e2e -e2e

bench-smoke: build ## every Go benchmark once, and the benchmark tool briefly in every mode
	$(GO) test -run '^$$' -bench . -benchtime 1x ./...
	./$(BENCH) -duration 500ms -warmup 100ms -compare uml_switch,relay -runs 1
	./$(BENCH) -duration 500ms -warmup 100ms -clients vde -hub -ports 4 -compare vde_switch -runs 1
	./$(BENCH) -duration 500ms -warmup 100ms -ports 4 -compare vlan-access,vlan-trunk -runs 1
	./$(BENCH) -duration 500ms -warmup 100ms -compare umlswitch-web,umlswitch-capture -runs 1
	for t in bess gre l2tpv3 vxlan stream tap raw; do ./$(BENCH) -duration 500ms -warmup 100ms -transport $$t -ports 3 -compare relay -runs 1 || exit 1; done
	./$(BENCH) -duration 500ms -warmup 100ms -transport stream -ports 3 -compare relay-bare -runs 1
	./$(BENCH) -duration 500ms -warmup 100ms -transport xdp -compare umlswitch-xdp,umlswitch-xdp-filter -runs 1
	./$(BENCH) -mode latency -duration 300ms -warmup 50ms -compare uml_switch,relay -runs 1 -plot $${TMPDIR:-/tmp}/umlswitch-latency.png
	./$(BENCH) -mode scan -duration 200ms -warmup 50ms -sizes 64,9000 -port-counts 2,16 -compare uml_switch,relay -runs 1 -plot $${TMPDIR:-/tmp}/umlswitch-scan.png
	./$(BENCH) -mode soak -duration 3s -interval 1s -rate 200 -plot $${TMPDIR:-/tmp}/umlswitch-soak.png
	./$(BENCH) -mode evpn -vnis 2 -vteps 4 -macs 40 -duration 200ms -warmup 50ms -runs 1
	./$(BENCH) -mode nat -duration 300ms -warmup 100ms -runs 1

bench: build ## bench/RESULTS.md's runs: umlswitch against uml_switch, vde_switch and the ceiling relay (switch on CPU 0)
	./$(BENCH) -cpu 0 -compare uml_switch,relay -runs 5
	./$(BENCH) -cpu 0 -ports 8 -compare uml_switch,relay -runs 7
	./$(BENCH) -cpu 0 -ports 8 -hub -compare uml_switch,relay -runs 9
	./$(BENCH) -cpu 0 -clients vde -ports 8 -compare relay,vde_switch -runs 5
	./$(BENCH) -cpu 0 -mode latency -compare uml_switch,relay -runs 3
	./$(BENCH) -cpu 0 -mode scan -sizes 64 -port-counts 2,8,64 -compare uml_switch,relay -runs 3 -duration 2s
	./$(BENCH) -cpu 0 -compare vlan-access,vlan-trunk -runs 5
	./$(BENCH) -cpu 0 -compare umlswitch-web,umlswitch-capture -runs 5
	./$(BENCH) -cpu 0 -mode nat -runs 3
	for t in bess gre l2tpv3 vxlan stream tap raw; do ./$(BENCH) -cpu 0 -transport $$t -compare relay -runs 5 || exit 1; done
	./$(BENCH) -cpu 0 -transport stream -compare relay,relay-bare -runs 5
	./$(BENCH) -cpu 0 -mode evpn -runs 3

soak: build ## 30 minutes of mixed traffic and churn (switch on CPU 0): a leak check, plotted into soak.png
	./$(BENCH) -mode soak -cpu 0 -duration 30m -interval 1m -plot soak.png

readme: build ## rewrite the README's quotes of -h (a test checks they are current)
	@for q in "umlswitch -h:./$(BIN) -h" "umlswitch-bench -h:./$(BENCH) -h"; do \
	  marker="<!-- $${q%%:*} -->"; $${q#*:} 2>&1 | sed -n '/^Flags:$$/,$$p' | tail -n +2 > .help.txt; \
	  awk -v m="$$marker" 'BEGIN{while((getline l < ".help.txt")>0) h=h l "\n"} \
	    $$0==m {print; print "```"; printf "%s", h; print "```"; skip=1; next} \
	    skip && $$0=="<!-- end -->" {skip=0} !skip' README.md > README.md.new && mv README.md.new README.md; \
	done; rm -f .help.txt

clean: ## remove build output
	rm -rf bin
