# Every target is idempotent: the venv is (re)built only when the pins change.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_ARGS ?=

.PHONY: install test-tools demo test test-slow bench grafana kuberay clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install the project with pinned versions

demo: install  ## the main job, end to end, on a local Ray cluster started by the program
	$(BIN)/tala-ray demo $(DEMO_ARGS)

# Debian packages the integration tests drive: a headless browser for the Ray dashboard and
# Prometheus to scrape the service's metrics. Installed with apt-get only when missing.
TEST_TOOLS := chromium prometheus
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

test-tools:  ## install the Debian packages the browser and Prometheus tests use, when missing
	@missing=""; for tool in $(TEST_TOOLS); do command -v $$tool >/dev/null 2>&1 || missing="$$missing $$tool"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing with apt-get"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends$$missing >/dev/null; \
	fi

test: install test-tools  ## lint, then the test suite (what CI runs)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -m "not slow"

test-slow: install  ## long workloads (quality bars on 50k applicants)
	$(BIN)/python -m pytest -m slow

grafana: install  ## write the Grafana dashboard of the service's metrics (built as code) to deploy/grafana/
	$(BIN)/python -m tala_ray.serving.grafana deploy/grafana/tala-ray-decision-service.json

kuberay: install  ## write the KubeRay RayService manifest (serveConfigV2 from serve_configs/credit_decision.yaml)
	$(BIN)/python -m tala_ray.serving.kuberay deploy/kuberay/rayservice.yaml

clean:
	rm -rf $(VENV) .pytest_cache
