# limo-ray: `make demo` and `make test` do all the set-up on a fresh machine (they run `make install` first).
PYTHON ?= python3.11
VENV ?= .venv
PROFILE ?= cpu
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(PROFILE)
INSTALL_LOG := $(VENV)/pip-install.log
# Torch is pinned in every pip call: an unpinned dependency would otherwise pull a CUDA build on the CPU profile.
CONSTRAINTS := constraints-$(PROFILE).txt

.PHONY: install test test-fast lint demo clean

install: $(STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing limo-ray ($(PROFILE) profile) into $(VENV): a few minutes; pip's output goes to $(INSTALL_LOG)"
	@$(BIN)/python -m pip install --quiet --upgrade pip > /dev/null 2>&1 || $(BIN)/python -m pip --version
	@# pip lists hundreds of packages (and may warn about each index it cannot read): all of it goes to the log,
	@# and a failure shows the log's end here.
	@$(BIN)/python -m pip install --log $(INSTALL_LOG) --progress-bar off -c $(CONSTRAINTS) -e '.[$(PROFILE),dev]' > /dev/null 2>&1 || { tail -n 40 $(INSTALL_LOG); echo "pip install failed: the whole log is $(INSTALL_LOG)"; exit 1; }
ifeq ($(PROFILE),cpu)
	@# PyPI's torchvision/torchaudio/torchcodec are CUDA builds: they break transformers' Qwen2 import and vLLM start.
	@$(BIN)/python -m pip uninstall --yes --quiet torchvision torchaudio torchcodec
endif
ifeq ($(PROFILE),gpu)
	@# flash-attn: PyPI has only its source, and its build imports torch, so it is built against the torch just
	@# installed, outside pip's build isolation. Its version is pinned in constraints-gpu.txt.
	@echo "building flash-attn against the installed torch (long); pip's output goes to $(INSTALL_LOG)"
	@$(BIN)/python -m pip install --log $(INSTALL_LOG) --progress-bar off -c $(CONSTRAINTS) packaging psutil ninja wheel setuptools > /dev/null 2>&1 || { tail -n 40 $(INSTALL_LOG); exit 1; }
	@$(BIN)/python -m pip install --log $(INSTALL_LOG) --progress-bar off --no-build-isolation -c $(CONSTRAINTS) flash-attn > /dev/null 2>&1 || { tail -n 40 $(INSTALL_LOG); echo "flash-attn failed to build: the whole log is $(INSTALL_LOG)"; exit 1; }
endif
	@touch $(STAMP)
	@echo "installed limo-ray ($(PROFILE) profile) into $(VENV)"

test: install
	$(BIN)/python -m pytest -q --timeout=1800 --durations=15

test-fast: install
	$(BIN)/python -m pytest -q -m "not integration" --timeout=600

lint: install
	$(BIN)/ruff check limo_ray tests bench
	$(BIN)/ruff format --check limo_ray tests bench

DEMO_DIR ?= runs/demo

demo: install
	@# The toy world is built (or found in ~/.cache/limo-ray) on first use; every finished step is skipped on a re-run.
	$(BIN)/limo run --config tiny --run-dir $(DEMO_DIR)
	@echo "demo report: $(DEMO_DIR)/summary.md (eval: $(DEMO_DIR)/eval/report.md, data card: $(DEMO_DIR)/curate/README.md)"

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
