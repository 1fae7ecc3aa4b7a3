# The two set-up commands of the README: `make demo` (the main job) and `make test` (every test, after
# preparing the machine: system packages and the loopback services, scripts/test_setup.sh).
VENV ?= .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup demo test test-machine vllm-env bench

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3.11 -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

demo: setup
	$(VENV)/bin/uninote demo

vllm-env:
	bash scripts/setup_vllm_venv.sh

test-machine:
	bash scripts/test_setup.sh

test: test-machine setup vllm-env
	$(VENV)/bin/pytest -v --durations=25
