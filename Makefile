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
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@# pip lists hundreds of packages: quiet here (its warnings and errors still show), everything in the log.
	@$(BIN)/python -m pip install --quiet --log $(INSTALL_LOG) --progress-bar off -c $(CONSTRAINTS) -e '.[$(PROFILE),dev]'
ifeq ($(PROFILE),cpu)
	@# PyPI's torchvision/torchaudio/torchcodec are CUDA builds: they break transformers' Qwen2 import and vLLM start.
	@$(BIN)/python -m pip uninstall --yes --quiet torchvision torchaudio torchcodec
endif
ifeq ($(PROFILE),gpu)
	@# flash-attn: PyPI has only its source, and its build imports torch, so it is built against the torch just
	@# installed, outside pip's build isolation. Its version is pinned in constraints-gpu.txt.
	@echo "building flash-attn against the installed torch (long); pip's output goes to $(INSTALL_LOG)"
	@$(BIN)/python -m pip install --quiet --log $(INSTALL_LOG) --progress-bar off -c $(CONSTRAINTS) packaging psutil ninja wheel setuptools
	@$(BIN)/python -m pip install --quiet --log $(INSTALL_LOG) --progress-bar off --no-build-isolation -c $(CONSTRAINTS) flash-attn
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
