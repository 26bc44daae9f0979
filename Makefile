# The README's commands. Each one runs the idempotent set-up first (a no-op once done).
SHELL := /bin/bash
export TZ := UTC
export DO_NOT_TRACK := true
export MLFLOW_DISABLE_TELEMETRY := true
export LAKELOOP_DATA_ROOT ?= $(CURDIR)/.lakeloop
export DAGSTER_HOME ?= $(LAKELOOP_DATA_ROOT)/dagster
PY := .venv/bin/python
# Approvals are signed with LAKELOOP_APPROVAL_KEY (README: "Approval"): the environment's when
# it has one, else the local key set-up generated.
WITH_KEY = LAKELOOP_APPROVAL_KEY="$${LAKELOOP_APPROVAL_KEY:-$$(cat $(LAKELOOP_DATA_ROOT)/secrets/approval.key)}"

.PHONY: setup demo test chaos images dev bench lint stop clean

setup:
	@infra/local/setup.sh

demo: setup
	@$(WITH_KEY) $(PY) -m tests.support.demo

test: setup
	@$(PY) -m pytest

chaos: setup
	@$(PY) -m pytest -m 'chaos or system' tests/chaos tests/production tests/test_second_use_case.py

# The user-code and serving images, built with buildah from infra/*/Dockerfile, then smoke-run.
images: setup
	@infra/images/build.sh

dev: setup
	@mkdir -p $(DAGSTER_HOME) && cp -n infra/local/dagster.yaml $(DAGSTER_HOME)/dagster.yaml 2>/dev/null || true
	@.venv/bin/lakeloop serve
	@echo "MLflow UI: http://127.0.0.1:5000   Dagster UI: http://127.0.0.1:3000   reports: http://127.0.0.1:8765"
	@.venv/bin/mlflow ui --backend-store-uri sqlite:///$(LAKELOOP_DATA_ROOT)/mlflow/mlflow.db \
		--host 127.0.0.1 --port 5000 >$(LAKELOOP_DATA_ROOT)/mlflow-ui.log 2>&1 & \
	mlflow_pid=$$!; \
	.venv/bin/lakeloop reports >$(LAKELOOP_DATA_ROOT)/reports-server.log 2>&1 & \
	reports_pid=$$!; trap "kill $$mlflow_pid $$reports_pid 2>/dev/null" EXIT; \
	$(WITH_KEY) .venv/bin/dagster dev -h 127.0.0.1 -p 3000

bench: setup
	@$(PY) bench/run.py $(ONLY)

lint: setup
	@.venv/bin/ruff check .
	@.venv/bin/mypy
	@$(PY) bench/report.py --check

stop:
	@.venv/bin/lakeloop serve --stop

clean: stop
	rm -rf $(LAKELOOP_DATA_ROOT)
