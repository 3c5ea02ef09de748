# The two commands a newcomer needs: `make run` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
PORT   ?= 1053
REPORTS = $(VENV)/reports
# greet is put on the path, not pip-installed: the trial suite checks -plugins lists it only when installed.
GREET_SRC = $(CURDIR)/plugins/coredns-greet/src
DEBIAN_TOOLS = dnsperf knot-dnsutils bind9-dnsutils unbound prometheus golang-github-dnstap-golang-dnstap-cli \
	knot knot-dnssecutils ldnsutils etcd-server etcd-client openssl
# The commands the tests drive, one per package above (prometheus also gives promtool).
DEBIAN_COMMANDS = dnsperf kdig dig delv unbound prometheus promtool dnstap knotd knotc kzonecheck \
	ldns-verify-zone etcd etcdctl openssl

.PHONY: run test setup tools lint typecheck bench fuzz clean

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

## The Debian tools the integration tests and benchmarks drive (dnsperf, kdig, dig and delv,
## unbound, prometheus and promtool, the dnstap reader, knotd and kzonecheck, ldns-verify-zone,
## etcd and etcdctl, openssl).
tools:
	@if for c in $(DEBIAN_COMMANDS); do command -v $$c >/dev/null || exit 1; done; then \
	    echo "Debian tools present"; \
	elif [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEBIAN_TOOLS); \
	elif command -v sudo >/dev/null; then \
	    (sudo apt-get update -qq || true) && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEBIAN_TOOLS); \
	else echo "warning: cannot install $(DEBIAN_TOOLS); tests that need them will skip"; fi

## Every test, in two pytest processes: the trial suite (unit, in-process and subprocess servers;
## pytest-twisted off, as pyproject's addopts say) and the pytest-twisted tests (the plugin-author
## fixtures', greet's), which cannot share a process with trial TestCases. Both always run; each
## writes a JUnit report and .ci/total.py prints and checks the total ("N passed, N failed, ...").
test: setup tools
	@rm -rf $(REPORTS) && mkdir -p $(REPORTS)
	$(BIN)/python -m pytest -q -p no:cacheprovider --ignore=tests/pytest_twisted \
	    --junitxml=$(REPORTS)/trial-suite.xml tests; echo $$? > $(REPORTS)/trial-suite.rc
	PYTHONPATH=$(GREET_SRC)$${PYTHONPATH:+:$$PYTHONPATH} $(BIN)/python -m pytest -q -p no:cacheprovider \
	    -o addopts=-ra -p twisted_coredns.testing.fixtures --junitxml=$(REPORTS)/pytest-twisted.xml \
	    tests/pytest_twisted plugins/coredns-greet/tests; echo $$? > $(REPORTS)/pytest-twisted.rc
	$(BIN)/python .ci/total.py $(REPORTS)/trial-suite.xml $(REPORTS)/pytest-twisted.xml
	$(BIN)/ruff check twisted_coredns twisted tests plugins bench
	$(BIN)/mypy

lint: setup
	$(BIN)/ruff check twisted_coredns twisted tests plugins bench

typecheck: setup
	$(BIN)/mypy

## Each script prints its own table; every row is measured beside its reference in the same run.
BENCHES = run memory transports transports_quic policy_shaping policy_views policy_misc \
	authoritative transfer dnssec etcd

bench: setup tools
	@for b in $(BENCHES); do echo "== bench/$$b.py"; $(BIN)/python bench/$$b.py || exit 1; done

## The long fuzz run (bench/fuzz.py): 10^6 packets (PACKETS=N for another count, SEED=S to repeat a
## run) over UDP and TCP against forward, cache, log, errors, any, chaos and whoami; prints its table
## and fails on any bad reply. `make test` runs 20,000 of them (tests/fuzz).
fuzz: setup tools
	$(BIN)/python bench/fuzz.py $(if $(PACKETS),--packets $(PACKETS)) $(if $(SEED),--seed $(SEED))

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
	rm -rf plugins/coredns-greet/build plugins/coredns-greet/src/*.egg-info
	find . -name dropin.cache -delete
