# The two commands of the README. Both install what is missing first (idempotent).
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup test demo clean-venv

setup:
	bash tools/setup_env.sh

test: setup
	$(PY) -m pytest $(PYTEST_ARGS) tests

demo: setup
	bash tools/run_demo.sh

clean-venv:
	rm -rf $(VENV)
