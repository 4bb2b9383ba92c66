# Trainboard: `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
DEMO_PORT ?= 6009
DEMO_UI_PORT ?= 8501
DEMO_DB ?= sqlite:///./trainboard.db

.PHONY: install demo test lint typecheck proto check-proto frontend clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch is pinned (its CPU wheel); never let a range pull a CUDA build
	$(PY) -m pip install -q -e '.[dev,torch]'
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

# Starts the server on SQLite and the dashboard (`trainboard up`), waits until the
# dashboard answers, trains the three demo runs while it is live, prints its URL and
# keeps both running until Ctrl-C, which stops them (the data stays in the database).
DASHBOARD_ANSWERS := import sys; from trainboard.cli.processes import http_ok; sys.exit(not http_ok(sys.argv[1]))
demo: $(STAMP)
	@$(VENV)/bin/trainboard up --db '$(DEMO_DB)' --port $(DEMO_PORT) --ui-port $(DEMO_UI_PORT) & up=$$!; \
	trap 'kill -INT $$up 2>/dev/null; wait $$up; exit 0' INT TERM; \
	until $(PY) -c '$(DASHBOARD_ANSWERS)' http://127.0.0.1:$(DEMO_UI_PORT)/_stcore/health; do \
		kill -0 $$up 2>/dev/null || exit 1; sleep 0.2; \
	done; \
	if $(VENV)/bin/trainboard demo --server 127.0.0.1:$(DEMO_PORT) --wait 60; then \
		echo; \
		echo "Dashboard: http://127.0.0.1:$(DEMO_UI_PORT)   (Ctrl-C stops the dashboard and the server)"; \
		wait $$up; \
	else \
		kill -INT $$up 2>/dev/null; wait $$up; exit 1; \
	fi

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

# The dashboard's chart cards: ui/frontend/ (uPlot from npm, our sources) built into
# ui/trainboard_ui/static/, which is committed and ships in the wheel (no Node needed
# to install or run). tests/test_frontend.py fails when the build is stale.
frontend:
	cd ui/frontend && npm ci --no-audit --no-fund && node build.mjs

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache test-output

# Trainboard side by side with tensorboardX/TensorBoard, MLflow and Trackio (bench.compare, bench.browser),
# in a virtualenv of its own so that the peers never enter .venv. No torch: none of the
# peers requires it, and the check below fails the target if a range ever pulls it in.
BENCH_VENV := .venv-bench
BENCH_PY := $(BENCH_VENV)/bin/python
BENCH_STAMP := $(BENCH_VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

$(BENCH_STAMP): pyproject.toml
	test -x $(BENCH_PY) || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_PY) -m pip install -q --upgrade pip
	$(BENCH_PY) -m pip install -q -e '.[all]' mlflow tensorboard tensorboardX trackio playwright
	! $(BENCH_PY) -m pip show -q torch 2>/dev/null || { echo "torch was pulled into $(BENCH_VENV)"; exit 1; }
	rm -f $(BENCH_VENV)/.installed-*
	touch $@

.PHONY: bench bench-browser
bench: $(BENCH_STAMP)
	$(BENCH_PY) -m bench.compare $(BENCH_ARGS)

# The dashboard in Chromium beside TensorBoard and Trackio (python -m bench.browser).
bench-browser: $(BENCH_STAMP)
	$(BENCH_PY) -m bench.browser $(BENCH_ARGS)
