# `make run` and `make test` work from a fresh clone: they build what they need first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
NPM_CACHE := .cache/npm
# Reference MCP servers nobody here wrote, pinned; installed into a cache folder so tests
# run them with node and never fetch anything at test time.
NPM_SERVERS := @modelcontextprotocol/server-everything@2026.8.31 @modelcontextprotocol/server-filesystem@2026.8.31
# The MCP conformance suite (its CLI imports fs.globSync, Node >= 22; on Node 20 the install
# step points that import at npm glob@11 instead) and the glob it needs.
NPM_TOOLS := @modelcontextprotocol/conformance@0.1.16 glob@11.1.0
CONFORMANCE_JS := $(NPM_CACHE)/node_modules/@modelcontextprotocol/conformance/dist/index.js
DEMO_HTTP_PORT := 8765

.PHONY: run test lint unit bench bench-baseline bench-fastmcp bench-gateway clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

$(NPM_CACHE)/.installed: Makefile
	mkdir -p $(NPM_CACHE)
	npm install --prefix $(NPM_CACHE) --no-audit --no-fund --no-package-lock --loglevel=error $(NPM_SERVERS) $(NPM_TOOLS)
	sed -i -E 's/import\{([^}]*),globSync as ([A-Za-z_$$]+),([^}]*)\}from"fs";/import{\1,\3}from"fs";import{globSync as \2}from"glob";/' $(CONFORMANCE_JS)
	touch $@

run: $(BIN)/.installed
	@PATH="$(CURDIR)/$(BIN):$$PATH" sh -c '\
	  python examples/servers/demo_server.py --transport streamable-http --port $(DEMO_HTTP_PORT) & demo=$$!; \
	  trap "kill $$demo 2>/dev/null" EXIT INT TERM; \
	  mcp-sidecar run -c examples/demo.yaml --log-format text'

lint: $(BIN)/.installed
	$(BIN)/ruff check .

test: $(BIN)/.installed $(NPM_CACHE)/.installed lint
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest -q -p no:cacheprovider -n 2 --durations=15

unit: $(BIN)/.installed
	$(BIN)/pytest -q tests/unit

bench: $(BIN)/.installed $(NPM_CACHE)/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/run_all.py

# The OpenAI Agents SDK's manager, in its own venv (it pins its own mcp), for side-by-side rows.
bench-baseline:
	python3 -m venv .cache/bench-baseline
	.cache/bench-baseline/bin/pip install -q "openai-agents==0.24.0"

# fastmcp's create_proxy, the gateway benchmark's peer, in its own venv (its dependencies stay out of ours).
bench-fastmcp: .cache/bench-fastmcp/.installed
.cache/bench-fastmcp/.installed:
	python3 -m venv .cache/bench-fastmcp
	.cache/bench-fastmcp/bin/pip install -q "fastmcp==4.1.6"
	touch $@

# The gateway beside a direct connection and fastmcp's proxy (benchmarks/README.md, "Gateway").
bench-gateway: $(BIN)/.installed $(NPM_CACHE)/.installed bench-fastmcp
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/bench_gateway_compare.py

clean:
	rm -rf $(VENV) .cache
