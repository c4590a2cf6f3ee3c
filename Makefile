# The two commands of the README. Each one creates/updates the virtual environment first.
VENV    ?= .venv
PYTHON  ?= python3
CORES   ?= all
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
# TomoPy is conda-forge only; CI keeps a CPU wheel beside the project (not committed) for its tests.
TOMOPY  := ../shared/tomopy

.PHONY: demo test lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

demo: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) --resources gpu=1 --show-failed-logs
	$(BIN)/snakemake --report report.html
	@for f in results/*/06_evaluate/metrics.md; do echo; cat "$$f"; done

test: $(STAMP)
	bash tests/setup-system.sh
	@if [ -d $(TOMOPY) ]; then $(BIN)/python -c 'import tomopy' 2>/dev/null || \
	  $(BIN)/python -m pip install --quiet --disable-pip-version-check $(TOMOPY)/tomopy-*.whl; \
	else echo "test: no $(TOMOPY) beside the project: the TomoPy tests will skip"; fi
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

clean:
	rm -rf results .snakemake report.html
