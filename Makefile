# minikubelet: the two commands in the README, plus a few shortcuts for development.
# The logic lives in scripts/; this file only names the entry points.
#
#   make run     set up .venv and run the daemon on ./manifests with the process runtime
#   make test    install what the tests need, then ruff, mypy, import-linter and pytest

VENV ?= .venv
export VENV

# `make run` passes the paths explicitly: as root the daemon's defaults are the system paths
# (/etc/minikubelet/manifests, /var/lib/minikubelet), and a tour must not touch those.
RUN_ARGS ?= --manifests ./manifests --state-dir ./.minikubelet --runtime process

.PHONY: help run test deps venv lint typecheck imports pytest bench clean

help:
	@sed -n 's/^#   //p' $(firstword $(MAKEFILE_LIST))

run:
	@scripts/install-system-deps run
	@scripts/ensure-venv
	exec $(VENV)/bin/minikubelet run $(RUN_ARGS) $(ARGS)

test: deps
	@scripts/run-checks

deps:
	@scripts/install-test-deps

venv:
	@scripts/ensure-venv --test

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: venv
	$(VENV)/bin/mypy --strict minikubelet

imports: venv
	$(VENV)/bin/lint-imports

pytest: deps
	$(VENV)/bin/python -m pytest -ra tests $(PYTEST_ARGS)

bench: venv
	@set -e; for b in bench/*.py; do echo "==> $$b"; $(VENV)/bin/python "$$b"; done

clean:
	rm -rf .minikubelet .mypy_cache .ruff_cache .pytest_cache .hypothesis
