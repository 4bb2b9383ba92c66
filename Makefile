# Trainboard: `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
DEMO_PORT ?= 6009
DEMO_DB ?= sqlite:///./trainboard.db

.PHONY: install demo test lint typecheck proto check-proto clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch is pinned (its CPU wheel); never let a range pull a CUDA build
	$(PY) -m pip install -q -e '.[dev,torch]'
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

# Starts the server on SQLite, trains the three demo runs against it, prints
# what the server stored, and stops the server (the data stays in the file).
demo: $(STAMP)
	@$(VENV)/bin/trainboard server --db '$(DEMO_DB)' --port $(DEMO_PORT) & pid=$$!; \
	trap 'kill $$pid 2>/dev/null; wait $$pid 2>/dev/null' EXIT INT TERM; \
	$(VENV)/bin/trainboard demo --server 127.0.0.1:$(DEMO_PORT) --wait 60

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

test: $(STAMP) lint typecheck
	$(VENV)/bin/pytest -q

proto: $(STAMP)
	$(PY) -m grpc_tools.protoc -Iproto --python_out=client --pyi_out=client \
		--grpc_python_out=client proto/trainboard/v1/trainboard.proto

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache test-output
