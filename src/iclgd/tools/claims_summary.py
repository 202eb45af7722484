"""The reviewer's claim list: each claim of a finished run with its estimate, verdict, the study that
tests it, the command that rebuilds that study's claims alone and what its jobs cost in that run.

Written beside the expected results (`expected/<name>/CLAIMS.md`) by `iclgd.tools.expected`, so the page
REVIEWING.md links always shows the reference run's own numbers.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

from iclgd.core import claim_rows

_RULE = re.compile(r"^rule (\w+):", re.MULTILINE)


def family_studies(run: Path) -> dict[str, str]:
    """Claim family -> the study whose claim rows hold it (results/claims/<study>.pkl)."""
    found = {}
    for path in sorted((run / "results" / "claims").glob("*.pkl")):
        rows = claim_rows.read(path)
        for frame in (rows.tested, rows.exact):
            if "family" in frame:
                found.update({family: rows.study for family in frame["family"]})
    return found


def study_minutes(run: Path, repo: Path) -> dict[str, float]:
    """Job-minutes of each study's own rules (its rule file) in the run's benchmarks."""
    bench = json.loads((run / "results/paper/provenance.json").read_text())["benchmarks"]
    minutes = {}
    for rules_file in sorted((repo / "workflow" / "rules").glob("*.smk")):
        rules = set(_RULE.findall(rules_file.read_text()))
        minutes[rules_file.stem] = sum(b["seconds"] for b in bench if b["rule"] in rules) / 60
    return minutes


def _interval(row: dict[str, str]) -> str:
    def short(text: str) -> str:
        try:
            return f"{float(text):.3g}"
        except ValueError:
            return text or "--"
    ci = f" [{short(row['effect_lo'])}, {short(row['effect_hi'])}]" if row["effect_lo"] else ""
    return short(row["effect"]) + ci


def _minutes(value: float) -> str:
    return f"{value:.1f}" if value >= 0.05 else "< 0.1"


def claims_markdown(run: Path, name: str, repo: Path) -> str:
    """The claim list as Markdown: one row per claim of results/stats/claims.csv."""
    rows = list(csv.DictReader(io.StringIO((run / "results/stats/claims.csv").read_text())))
    studies, minutes = family_studies(run), study_minutes(run, repo)
    # `make <name>` runs config/<name>.yaml in runs/<name> (Makefile); the command must name both, or it would
    # rebuild that directory with the default config
    where = "" if name == "default" else f" --configfile config/{name}.yaml --directory runs/{name}"
    lines = [f"# The claims of the `{name}` reference run", "",
             "Written by `make expected` from the run's `results/stats/claims.csv`; the estimate is the "
             "claim's effect with its 95 % interval, the verdict is judged against the reference "
             "(README 'Verdicts from intervals'). Job-minutes: the study's own jobs in that run (its data "
             "and models are shared, and prepared once).", "",
             "| claim (family) | model / dataset | test, unit | estimate [95 % CI] | verdict | study | "
             "rebuild its claims alone | job-min |", "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        study = studies.get(row["family"], "?")
        target = f"`snakemake --profile config/profiles/default{where} results/claims/{study}.pkl`"
        lines.append(f"| {row['family']} | {row['model'] or '--'} / {row['dataset'] or '--'} | {row['test']}, "
                     f"{row['unit'] or '--'} | {_interval(row)} | {row['verdict']} | {study} | {target} | "
                     f"{_minutes(minutes.get(study, 0.0))} |")
    return "\n".join(lines) + "\n"
