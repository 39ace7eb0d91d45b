# The README's quick start: `make demo` and `make test`, from a fresh clone with python3.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint clean

# Set-up: the venv, torch from the CPU wheel on this disk (pinned), the project
# with its test and benchmark extras (every import of benchmarks/), the Debian
# cross toolchains when missing, and PyPI's aarch64 libtvm_ffi.so for the qemu tests.
$(STAMP): setup.cfg pyproject.toml tools/install_toolchains.sh tvm_snn/deploy/ffi_library.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[test,bench]" --config-settings editable_mode=compat
	tools/install_toolchains.sh
	$(PY) -m tvm_snn.deploy.ffi_library >/dev/null
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m tvm_snn.demo

test: $(STAMP)
	$(PY) -m pytest -m "not slow and not tuning and not rpc and not fpga"

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) out .pytest_cache
