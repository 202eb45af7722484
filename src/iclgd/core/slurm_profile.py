"""The Slurm profile (config/profiles/slurm/config.yaml), written from measured benchmarks and site settings.

Why generated: a cluster job that asks for too little memory or time is killed, one that asks for far
too much waits in the queue. So every rule's request comes from the `benchmarks/**.tsv` files of a real
run (peak RSS, wall time; kept in `measured.tsv` beside the profile) with a margin, and the few settings
that belong to a site (partitions, account, GPUs) are written once into every rule that needs them.

Which rule is what comes from the rule files themselves (`rule_kinds`): a rule with `localrule: True`
runs on the submitting host; every other rule has a `benchmark:` (so it has a measurement); a rule that
passes `runtime=config["runtime"]` to its script puts a model on `runtime.device`, so it is the one that
gets a GPU when the site has them.

    python -m iclgd.core.slurm_profile [--benchmarks RUN/benchmarks] [--site site.yaml] [--out config.yaml]
"""

from __future__ import annotations

import argparse
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

PROFILE_DIR = Path(__file__).resolve().parents[3] / "config" / "profiles" / "slurm"
RULES_DIR = Path(__file__).resolve().parents[3] / "workflow" / "rules"
#: Requests = measured peak x MEM_MARGIN (rounded up to MEM_STEP MB) and wall x TIME_MARGIN (to TIME_STEP min).
MEM_MARGIN, MEM_STEP, MEM_MIN = 1.5, 500, 1000
TIME_MARGIN, TIME_STEP, TIME_MIN = 3.0, 5, 10
SITE_KEYS = {
    "partition": "the partition CPU jobs go to",
    "account": "the account jobs are charged to ('' = none: the plugin guesses or submits without)",
    "gpu_partition": "the partition of the jobs that run a model (used when gpus > 0)",
    "gpus": "GPUs per model job (0: a CPU-only cluster; model jobs then go to `partition`)",
    "gpu_model": "GPU type for --gpus=<type>:<n> ('' = any)",
    "jobs": "jobs queued at once",
    "runtime_scale": "multiplies every measured wall time (measured on another config or machine)",
}


class ProfileError(ValueError):
    """A bad site setting, benchmark file or rule file, named."""


@dataclass(frozen=True)
class RuleKind:
    benchmark: str | None   # the benchmark: path pattern, None if the rule has none
    local: bool             # localrule: True
    device: bool            # runs a model on runtime.device


def rule_kinds(rules_dir: Path = RULES_DIR) -> dict[str, RuleKind]:
    """Every rule of the workflow's rule files with its benchmark pattern and kind."""
    kinds = {}
    for path in sorted(Path(rules_dir).glob("*.smk")):
        for block in re.split(r"\n(?=rule \w+:)", path.read_text())[1:]:
            name = re.match(r"rule (\w+):", block).group(1)
            bench = re.search(r"\n    benchmark:\n\s+\"([^\"]+)\"", block)
            kinds[name] = RuleKind(
                benchmark=bench.group(1) if bench else None,
                local=bool(re.search(r"\n    localrule: True\n", block)),
                device='runtime=config["runtime"]' in block,
            )
    return kinds


def _pattern(benchmark: str) -> re.Pattern:
    parts = re.split(r"(\{\w+\})", benchmark)
    return re.compile("".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts) + "$")


def read_benchmarks(bench_dir: Path, kinds: dict[str, RuleKind]) -> pd.DataFrame:
    """One row per benchmark file of a run: rule, file, wall seconds, peak RSS (MB)."""
    bench_dir = Path(bench_dir)
    patterns = {name: _pattern(k.benchmark) for name, k in kinds.items() if k.benchmark}
    rows = []
    for path in sorted(bench_dir.rglob("*.tsv")):
        rel = "benchmarks/" + path.relative_to(bench_dir).as_posix()
        rule = next((name for name, pat in patterns.items() if pat.match(rel)), None)
        if rule is None:
            raise ProfileError(f"{path}: no rule's benchmark: pattern matches {rel}")
        table = pd.read_csv(path, sep="\t")
        if not {"s", "max_rss"} <= set(table.columns) or table.empty:
            raise ProfileError(f"{path}: not a Snakemake benchmark file (needs columns s and max_rss)")
        rss = pd.to_numeric(table["max_rss"], errors="coerce").fillna(0)  # "-" when the job ended too fast
        rows.append({"rule": rule, "file": rel, "s": float(table["s"].max()), "max_rss_mb": float(rss.max())})
    if not rows:
        raise ProfileError(f"{bench_dir}: no benchmark files")
    return pd.DataFrame(rows)


def summarise(bench: pd.DataFrame) -> pd.DataFrame:
    """Per rule: jobs measured, the longest wall time and the largest peak RSS (what `measured.tsv` holds)."""
    out = bench.groupby("rule").agg(jobs=("file", "size"), max_s=("s", "max"), max_rss_mb=("max_rss_mb", "max"))
    return out.reset_index().round({"max_s": 1, "max_rss_mb": 1})


def _round_up(x: float, step: int) -> int:
    return int(math.ceil(x / step) * step)


def requests(measured: pd.DataFrame, runtime_scale: float = 1.0) -> dict[str, dict[str, int]]:
    """Per rule: mem_mb (peak x 1.5, in 500 MB steps, >= 1000) and runtime in minutes (wall x 3 x scale,
    in 5 min steps, >= 10)."""
    out = {}
    for row in measured.itertuples():
        out[row.rule] = {
            "mem_mb": max(MEM_MIN, _round_up(row.max_rss_mb * MEM_MARGIN, MEM_STEP)),
            "runtime": max(TIME_MIN, _round_up(row.max_s * TIME_MARGIN * runtime_scale / 60, TIME_STEP)),
        }
    return out


def read_site(path: Path) -> dict[str, Any]:
    """The site settings, checked: every key known and present, with the right type."""
    site = yaml.safe_load(Path(path).read_text()) or {}
    unknown, missing = set(site) - set(SITE_KEYS), set(SITE_KEYS) - set(site)
    if unknown or missing:
        raise ProfileError(f"{path}: unknown keys {sorted(unknown)}, missing keys {sorted(missing)} "
                           f"(known: {sorted(SITE_KEYS)})")
    for key in ("partition", "account", "gpu_partition", "gpu_model"):
        if not isinstance(site[key], str):
            raise ProfileError(f"{path}: key {key} must be a string, got {site[key]!r}")
    for key in ("gpus", "jobs"):
        if not isinstance(site[key], int) or site[key] < (key == "jobs"):
            raise ProfileError(f"{path}: key {key} must be an integer >= {int(key == 'jobs')}, got {site[key]!r}")
    if not isinstance(site["runtime_scale"], (int, float)) or site["runtime_scale"] <= 0:
        raise ProfileError(f"{path}: key runtime_scale must be a number > 0, got {site['runtime_scale']!r}")
    if not site["partition"]:
        raise ProfileError(f"{path}: key partition is empty (`sinfo -s` lists your cluster's partitions)")
    return site


def set_resources(site: dict[str, Any], measured: pd.DataFrame, kinds: dict[str, RuleKind]) -> dict[str, dict]:
    """Every cluster rule's resources; model rules get the GPU settings when the site has GPUs."""
    missing = sorted(n for n, k in kinds.items() if not k.local and n not in set(measured["rule"]))
    if missing:
        raise ProfileError(f"measured.tsv has no measurement for cluster rules {missing}: regenerate it from a "
                           "run's benchmarks (--benchmarks) or mark them `localrule: True`")
    out = {}
    for rule, req in requests(measured, site["runtime_scale"]).items():
        if rule not in kinds or kinds[rule].local:
            continue
        res: dict[str, Any] = dict(req)
        if kinds[rule].device and site["gpus"] > 0:
            res |= {"slurm_partition": site["gpu_partition"], "gpu": site["gpus"]}
            if site["gpu_model"]:
                res["gpu_model"] = site["gpu_model"]
        out[rule] = res
    return dict(sorted(out.items()))


def render(site: dict[str, Any], measured: pd.DataFrame, kinds: dict[str, RuleKind], measured_from: str) -> str:
    """The profile's YAML text."""
    profile = {
        "executor": "slurm",
        "jobs": site["jobs"],
        "latency-wait": 60,
        "rerun-triggers": ["mtime", "params", "input", "code"],
        "default-resources": {"slurm_partition": site["partition"], "slurm_account": site["account"],
                              "mem_mb": MEM_MIN, "runtime": TIME_MIN},
        "set-resources": set_resources(site, measured, kinds),
    }
    header = (
        "# Slurm profile: GENERATED by `python -m iclgd.core.slurm_profile` (make slurm-profile); do not edit.\n"
        "# Site settings: site.yaml beside this file. Per-rule requests: measured.tsv, peak RSS x "
        f"{MEM_MARGIN:g} and wall x {TIME_MARGIN:g} x runtime_scale,\n# measured on: {measured_from}.\n"
        "# Rules with `localrule: True` run on the submitting host. README \"Running on a cluster\".\n"
    )
    return header + yaml.safe_dump(profile, sort_keys=False, default_flow_style=None, width=110)


def write_profile(site_path: Path, measured_path: Path, out: Path, rules_dir: Path = RULES_DIR) -> str:
    """Render the profile from site.yaml and measured.tsv into `out` (atomically); return its text."""
    measured = pd.read_csv(measured_path, sep="\t", comment="#")
    source = Path(measured_path).read_text().splitlines()[0].lstrip("# ").strip()
    text = render(read_site(site_path), measured, rule_kinds(rules_dir), source)
    tmp = Path(out).with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(out)
    return text


def write_measured(bench_dir: Path, out: Path, note: str, rules_dir: Path = RULES_DIR) -> pd.DataFrame:
    """Summarise a run's benchmark files into `out` (a TSV whose first line says where they came from)."""
    measured = summarise(read_benchmarks(bench_dir, rule_kinds(rules_dir)))
    Path(out).write_text(f"# {note}\n" + measured.to_csv(sep="\t", index=False))
    return measured


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--benchmarks", type=Path, help="a run's benchmarks/ directory: re-measure first")
    parser.add_argument("--note", default="", help="with --benchmarks: where that run came from")
    parser.add_argument("--site", type=Path, default=PROFILE_DIR / "site.yaml")
    parser.add_argument("--measured", type=Path, default=PROFILE_DIR / "measured.tsv")
    parser.add_argument("--out", type=Path, default=PROFILE_DIR / "config.yaml")
    args = parser.parse_args(argv)
    try:
        if args.benchmarks:
            write_measured(args.benchmarks, args.measured, args.note or f"benchmarks of {args.benchmarks}")
        write_profile(args.site, args.measured, args.out)
    except ProfileError as exc:
        raise SystemExit(f"error: {exc}") from None
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
