# Two set-up commands on a fresh Debian / Raspberry Pi OS machine: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run test lint bench-all train clean system-test-deps deploy-check

$(BIN)/edge-anpr: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.test-deps: $(BIN)/edge-anpr
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

## run: install into .venv and run the demo (serve + send the bundled frames + print reads)
run: $(BIN)/edge-anpr
	$(BIN)/edge-anpr demo

system-test-deps:
	bash scripts/ensure-system-packages

## test: install the test tools (and mosquitto, qemu-user-static, debootstrap when missing) and run
## the whole suite on two workers, one test module per worker at a time (module fixtures such as
## the Ansible apply are made once; tests/conftest.py puts the two longest modules first)
test: $(VENV)/.test-deps system-test-deps
	$(BIN)/ruff check edge_anpr tests
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -n 2 --dist loadscope --no-loadscope-reorder

## deploy-check: ansible-lint (production profile), systemd-analyze verify/security on the unit,
## the sd_notify tests, a real Ansible apply into a throwaway root and one into an arm64 root under
## qemu (also part of `make test`)
deploy-check: $(VENV)/.test-deps system-test-deps
	$(BIN)/python -m pytest -q tests/test_notify_systemd.py tests/test_systemd_unit.py tests/test_systemd_sandbox.py tests/test_systemd_live.py tests/test_ansible_role.py tests/test_arm64_root.py

lint: $(VENV)/.test-deps
	$(BIN)/ruff check edge_anpr tests
	$(BIN)/mypy
	$(BIN)/lint-imports

## train: retrain every model in edge_anpr/models/ (needs the [train] extra and ../shared/data)
train:
	test -x .venv-train/bin/python || $(PYTHON) -m venv .venv-train
	.venv-train/bin/python -m pip install -q -e '.[train]'
	.venv-train/bin/python -m edge_anpr.train all

clean:
	rm -rf $(VENV) .venv-train .pytest_cache .mypy_cache .ruff_cache
