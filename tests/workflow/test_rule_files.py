"""The rule files as a reader meets them: one file per study, each short enough to read at once, and every
rule's log and benchmark under the rule's own name (`logs/<rule>[/<wildcards>].log`)."""

from __future__ import annotations

import re
from pathlib import Path

from iclgd.core import studies

RULES = Path(__file__).resolve().parents[2] / "workflow" / "rules"
MAX_LINES = 150


def rule_paths(text: str) -> list[tuple[str, str, str]]:
    """(rule, directive, path) for every `log:` and `benchmark:` in a rule file."""
    found = []
    for block in re.split(r"(?m)^(?=rule \w+:)", text):
        rule = re.match(r"rule (\w+):", block)
        for directive in ("log", "benchmark"):
            path = re.search(rf"\n    {directive}:\n\s+\"([^\"]+)\"", block)
            if rule and path:
                found.append((rule.group(1), directive, path.group(1)))
    return found


def test_every_log_and_benchmark_sits_under_its_rules_name():
    wrong = []
    for path in sorted(RULES.glob("*.smk")):
        for rule, directive, where in rule_paths(path.read_text()):
            root, ext = ("logs", ".log") if directive == "log" else ("benchmarks", ".tsv")
            if not re.fullmatch(rf"{root}/{rule}(/\{{\w+\}})*{re.escape(ext)}", where):
                wrong.append(f"{path.name}: rule {rule} {directive} {where}")
    assert wrong == []


def test_the_check_sees_a_log_elsewhere():
    text = 'rule a:\n    log:\n        "logs/b/{model}.log",\n    benchmark:\n        "benchmarks/a/{model}.tsv"\n'
    assert rule_paths(text) == [("a", "log", "logs/b/{model}.log"), ("a", "benchmark", "benchmarks/a/{model}.tsv")]


def test_one_short_rule_file_per_study():
    for spec in studies.discover():
        lines = len((RULES / f"{spec.name}.smk").read_text().splitlines())
        assert lines <= MAX_LINES, f"workflow/rules/{spec.name}.smk: {lines} lines"
