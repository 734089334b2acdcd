# The two commands the README starts with, and what they need.
#   make demo   set up, then run the hub end to end on the embedded defaults (hub demo)
#   make test   set up, then run every test against a real Kafka broker, PostgreSQL and SQLite

PYTHON ?= python3.11
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test setup lint clean

demo: setup
	$(VENV)/bin/hub demo

# Two processes (a file's tests stay together, sharing its fixtures): the suite mostly waits on
# the broker and the databases, so this halves its time on two cores.
test: setup
	$(VENV)/bin/pytest -n 2 --dist loadfile

# Installs the hub with its test tools into .venv, and resolves the Kafka broker from Maven
# Central into the cache outside the work tree (see deploy/kafka/kafka.sh).
setup: $(STAMP)
	bash deploy/kafka/kafka.sh fetch

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) is needed"; exit 1; }
	@command -v java >/dev/null || { echo "Java 17 is needed (Debian: openjdk-17-jre-headless)"; exit 1; }
	@command -v mvn >/dev/null || { echo "Maven is needed (Debian: maven)"; exit 1; }
	@command -v openssl >/dev/null || { echo "openssl is needed (Debian: openssl)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e ".[test,bench]"
	touch $(STAMP)

lint: setup
	$(VENV)/bin/ruff check hub tests bench tools
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
