# StoreHub — `make demo` runs a whole store on this machine, `make test` passes the tests.
# Both install what they need: a virtualenv, and (as root, when missing) Debian's mosquitto.

VENV      ?= .venv
PY        := $(VENV)/bin/python
STAMP     := $(VENV)/.stamp-deps
CONFIG    ?= config/store.example.toml
PYTHON    ?= python3

.PHONY: test demo lint typecheck pytest bench system-deps clean

test: system-deps $(STAMP) lint typecheck pytest

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

system-deps:
	@missing=""; \
	command -v mosquitto >/dev/null 2>&1 || test -x /usr/sbin/mosquitto || missing="$$missing mosquitto"; \
	command -v mosquitto_pub >/dev/null 2>&1 || missing="$$missing mosquitto-clients"; \
	test -x /usr/bin/chromium || missing="$$missing chromium"; \
	test -f /usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf || missing="$$missing fonts-dejavu-core"; \
	command -v systemd-analyze >/dev/null 2>&1 || missing="$$missing systemd"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else \
	    echo "missing system packages:$$missing; run 'sudo apt-get install -y$$missing'" >&2; exit 2; \
	  fi; \
	fi

lint: $(STAMP)
	$(VENV)/bin/ruff check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

pytest: $(STAMP)
	$(VENV)/bin/pytest

bench: system-deps $(STAMP)
	$(VENV)/bin/storehub bench core --json

demo: system-deps $(STAMP)
	$(VENV)/bin/storehub demo --config $(CONFIG)

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache .hypothesis
