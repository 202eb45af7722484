"""The study registry: every study declares itself under one name, and a new study -- one package, one rule
file -- reaches the claims table and the paper with no edit of core."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from iclgd.core import studies

REPO = Path(__file__).resolve().parents[2]
SHIPPED = ("icl", "finetune", "compare", "order", "construction", "dai", "labels", "kernel")

TOY_STUDY = '''"""A toy study: one claim row, one macro."""

from iclgd.core.studies import StudySpec

STUDY = StudySpec(name="toy", title="A toy study", position=99, block=False,
                  knob=lambda row, cfg: ("toy.n", 7, 1.0, 0.0))
'''

TOY_RULES = '''"""Study toy: a claim row and a paper number, from nothing."""


rule toy_claims:
    output:
        rows="results/claims/toy.pkl",
    log:
        "logs/toy_claims.log",
    localrule: True
    script:
        "../scripts/toy/claims.py"


rule toy_paper_numbers:
    output:
        macros="results/paper/macros/toy.json",
    log:
        "logs/toy_paper_numbers.log",
    localrule: True
    shell:
        "echo '{{\\"ToyNumber\\": \\"1\\"}}' > {output.macros}"


contribute(claims=["results/claims/toy.pkl"], macros=["results/paper/macros/toy.json"])
'''


def test_the_shipped_studies_are_found_in_their_order_each_under_one_name():
    specs = studies.discover()
    assert tuple(s.name for s in specs) == SHIPPED
    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())["properties"]
    for spec in specs:
        assert (REPO / "src" / "iclgd" / spec.name / "study.py").exists()
        assert (REPO / "workflow" / "rules" / f"{spec.name}.smk").exists()
        assert not spec.block or spec.name in schema, f"config block {spec.name} missing from the schema"
    rule_files = {p.stem for p in (REPO / "workflow" / "rules").glob("*.smk")}
    assert rule_files - set(SHIPPED) == {"common", "data", "claims", "paper"}  # the core's own


def test_a_study_module_must_name_its_package(tmp_path, monkeypatch):
    package = tmp_path / "fake" / "wrong"
    package.mkdir(parents=True)
    (tmp_path / "fake" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "study.py").write_text(TOY_STUDY)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(TypeError, match="STUDY must be a StudySpec named 'wrong'"):
        studies.discover("fake")


def toy_tree(tmp_path: Path) -> Path:
    """A copy of the repository with a toy study added: its package and its rule file, nothing else."""
    tree = tmp_path / "repo"
    tree.mkdir()
    (tmp_path / "shared").symlink_to(REPO.parent / "shared")  # the data mirror beside the repository
    shutil.copy(REPO / "Snakefile", tree / "Snakefile")
    for part in ("workflow", "config", "paper", "src"):
        shutil.copytree(REPO / part, tree / part, ignore=shutil.ignore_patterns("__pycache__", "generated"))
    (tree / "src" / "iclgd" / "toy").mkdir()
    (tree / "src" / "iclgd" / "toy" / "__init__.py").write_text('"""A toy study."""\n')
    (tree / "src" / "iclgd" / "toy" / "study.py").write_text(TOY_STUDY)
    (tree / "workflow" / "rules" / "toy.smk").write_text(TOY_RULES)
    return tree


def rule_graph(tree: Path, tmp_path: Path) -> tuple[dict[str, str], set[tuple[str, str]]]:
    """(node id -> rule, edges as (upstream rule, downstream rule)) of the smoke config's rule graph."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree / "src"), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(tree / "Snakefile"), "--configfile",
           str(tree / "config" / "smoke.yaml"), "--directory", str(tmp_path / "run"), "--cores", "1", "--rulegraph"]
    done = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    nodes = dict(re.findall(r'(\d+)\[label = "(\w+)"', done.stdout))
    edges = {(nodes[a], nodes[b]) for a, b in re.findall(r"(\d+) -> (\d+)", done.stdout)}
    return nodes, edges


def test_a_toy_study_reaches_the_claims_table_and_the_paper_with_no_core_edit(tmp_path):
    tree = toy_tree(tmp_path)
    nodes, edges = rule_graph(tree, tmp_path)
    assert {"toy_claims", "toy_paper_numbers"} <= set(nodes.values())
    assert ("toy_claims", "claims") in edges and ("toy_paper_numbers", "macros") in edges
    assert ("finetune_claims", "claims") in edges and ("kernel_claims", "claims") in edges  # the shipped ones too
