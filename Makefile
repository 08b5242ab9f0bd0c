# Short aliases; everything they run is a plain command you can type yourself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Istio's CRDs (schemas + CEL rules) the local Kubernetes API validates against.
ISTIO_CRDS ?= ../shared/istio/crds-1.30.3.gen.yaml
export CHAOSMESH_ISTIO_CRDS := $(abspath $(ISTIO_CRDS))

.PHONY: install run gameday test pytest test-kubernetes-36 lint format bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[local,dev,report]'
	touch $@

# The main job: the Bookinfo fault-injection experiment end to end on this machine.
run: install
	$(BIN)/python -m chaosmesh_py.localmesh.demo experiments/bookinfo-ratings-delay.json

# The Bookinfo game day end to end on this machine: the local mesh with Prometheus (Debian:
# apt-get install prometheus), three experiments, an abort condition; results in gameday-results/.
gameday: install
	$(BIN)/python -m chaosmesh_py.localmesh.gameday experiments/bookinfo-gameday.yaml --results gameday-results

# Everything CI runs: lint and types, the suite, and the suite again on the oldest
# supported kubernetes client.
test: lint pytest test-kubernetes-36

pytest: install
	$(BIN)/python -m pytest

test-kubernetes-36: install
	$(PYTHON) -m venv .venv-kubernetes-36
	.venv-kubernetes-36/bin/pip install --quiet -e '.[local,dev,report]' 'kubernetes>=36,<37'
	.venv-kubernetes-36/bin/python -m pytest -p no:cacheprovider tests/integration tests/e2e \
		tests/apiserver/test_builtin_kinds.py tests/apiserver/test_openapi.py tests/apiserver/test_kubectl.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Needs wrk for the overhead part (Debian: apt-get install wrk); skipped without it.
bench: install
	$(BIN)/python bench/inject_rollback.py
	$(BIN)/python bench/traffic_edits.py
	$(BIN)/python bench/local_mesh.py
	$(BIN)/python bench/upstream_fault.py
	$(BIN)/python bench/load_probe.py
	$(BIN)/python bench/halt_rollback.py
	$(BIN)/python bench/first_call.py
	$(BIN)/python bench/gameday_overhead.py
	$(BIN)/python bench/security_matrix.py
	$(BIN)/python bench/kubectl_apply.py
	$(BIN)/python bench/policy_report.py
	$(BIN)/python bench/local_prometheus.py
	$(BIN)/python bench/announce_hang.py
	$(BIN)/python bench/report_size.py
	$(BIN)/python bench/dark_launch.py
	$(BIN)/python bench/routing_edits.py
	$(BIN)/python bench/pod_replacement.py
	$(BIN)/python bench/split_latency.py
	$(BIN)/python bench/canary_power.py
	$(BIN)/python bench/policy_edits.py
	$(BIN)/python bench/resilience_proof.py
	$(BIN)/python bench/security_changes.py
	$(BIN)/python bench/inbound_hop.py
	$(BIN)/python bench/mtls_cost.py
	$(BIN)/python bench/authz_cost.py
	$(BIN)/python bench/security_posture.py

clean:
	rm -rf $(VENV) .venv-kubernetes-36 .pytest_cache .mypy_cache .ruff_cache *.egg-info
