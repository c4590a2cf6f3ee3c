# The two commands of the README. Each one creates/updates the virtual environment first.
VENV    ?= .venv
PYTHON  ?= python3
CORES   ?= all
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

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
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

clean:
	rm -rf results .snakemake report.html
