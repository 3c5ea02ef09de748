# The two commands a newcomer needs: `make run` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
PORT   ?= 1053
DEBIAN_TOOLS = dnsperf knot-dnsutils bind9-dnsutils unbound

.PHONY: run test setup tools lint typecheck bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	# Build Twisted's plugin cache now, as the installing user (see docs/design.md).
	$(BIN)/python -c "from twisted.plugin import IPlugin, getPlugins; import twisted.plugins as p; list(getPlugins(IPlugin, p))"
	touch $@

setup: $(VENV)/.installed

## Serve the embedded default Corefile (". { whoami log }") on port $(PORT), as CoreDNS does with no Corefile.
run: setup
	cd $(CURDIR) && $(BIN)/twisted-coredns -dns.port $(PORT) $(if $(CONF),-conf $(CONF),-conf /dev/null)

## The Debian tools the integration tests and benchmarks drive (dnsperf, kdig, dig, unbound).
tools:
	@if command -v dnsperf >/dev/null && command -v kdig >/dev/null && command -v dig >/dev/null \
	    && command -v unbound >/dev/null; then echo "Debian tools present"; \
	elif [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEBIAN_TOOLS); \
	elif command -v sudo >/dev/null; then \
	    (sudo apt-get update -qq || true) && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEBIAN_TOOLS); \
	else echo "warning: cannot install $(DEBIAN_TOOLS); tests that need them will skip"; fi

## Every test: unit, in-process (trial TestCases under pytest) and integration (subprocess servers).
test: setup tools
	$(BIN)/python -m pytest -q -p no:cacheprovider tests
	$(BIN)/ruff check twisted_coredns twisted tests plugins bench
	$(BIN)/mypy

lint: setup
	$(BIN)/ruff check twisted_coredns twisted tests plugins bench

typecheck: setup
	$(BIN)/mypy

bench: setup tools
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
	find . -name dropin.cache -delete
