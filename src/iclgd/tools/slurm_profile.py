"""The Slurm profile (config/profiles/slurm/config.yaml), written from measured benchmarks and site settings.

Why generated: a cluster job that asks for too little memory or time is killed, one that asks for far
too much waits in the queue. So every rule's request comes from the `benchmarks/**.tsv` files of a real
run (peak RSS, wall time; kept in `measured.tsv` beside the profile) with a margin, and the few settings
that belong to a site (partitions, account, GPUs) are written once into every rule that needs them.

Which rule is what comes from the rule files themselves (`rule_kinds`): a rule with `localrule: True`
runs on the submitting host; every other rule has a `benchmark:` (so it has a measurement); a rule that
passes `runtime=config["runtime"]` to its script puts a model on `runtime.device`, so it is the one that
gets a GPU when the site has them (`prepare_model` among them: it draws an untrained copy on the run's
device; `weight_sparsity` reads a model too, but on the CPU in float32: no GPU); a rule that sizes its own
memory (`resources: mem_mb=...`, per model from its parameter count) gets no `mem_mb` here, since
set-resources would override the rule's value.

The GPU request of a model job, in the plugin's terms (snakemake-executor-plugin-slurm 2.8): `gpu` (and
`gpu_model`) -> `sbatch --gpus=[<model>:]<n>`, or, with site key `gres`, `gres` -> `sbatch --gres=<gres>`
(and `gpu: 0`); always `tasks_per_gpu: 0`, so the plugin never adds `--ntasks-per-gpu` (Slurm >= 23 rejects
it beside `--cpus-per-task`: "SLURM_TRES_PER_TASK is mutually exclusive with --ntasks-per-gpu"). The set is
static: every `prepare_model` job gets the GPU, also those that only dequantise a GGUF (about a minute).

    python -m iclgd.tools.slurm_profile [--benchmarks RUN/benchmarks] [--site site.yaml] [--out config.yaml]
"""

from __future__ import annotations

import argparse
import math
import re
import textwrap
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
#: What the plugin accepts as a GPU type (its gpu_model check) and a GPU GRES of ours: gpu[:<type>]:<n>.
GPU_MODEL_RE = re.compile(r"[A-Za-z0-9_.]+")
GRES_RE = re.compile(r"gpu(?::(?P<type>[A-Za-z0-9_.]+))?:(?P<count>[1-9][0-9]*)")
SITE_KEYS = {
    "partition": "the partition CPU jobs go to",
    "account": "the account jobs are charged to ('' = none: the plugin guesses or submits without)",
    "gpu_partition": "the partition of the jobs that run a model (used when gpus > 0)",
    "gpus": "GPUs per model job (0: a CPU-only cluster; model jobs then go to `partition`)",
    "gpu_model": "GPU type for --gpus=<type>:<n> ('' = any)",
    "gres": "'' = ask for GPUs with --gpus (gpus, gpu_model); or the GRES to ask with instead, --gres=gpu:<n> or "
            "gpu:<type>:<n> (its count = gpus, its type = gpu_model)",
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
    own_mem: bool = False   # sizes its own memory: `resources: mem_mb=...` in the rule (per model)


def rule_kinds(rules_dir: Path = RULES_DIR) -> dict[str, RuleKind]:
    """Every rule of the workflow's rule files with its benchmark pattern and kind."""
    kinds = {}
    for path in sorted(Path(rules_dir).glob("*.smk")):
        for block in re.split(r"\n(?=rule \w+:)", path.read_text())[1:]:
            name = re.match(r"rule (\w+):", block).group(1)
            bench = re.search(r"\n    benchmark:\n\s+\"([^\"]+)\"", block)
            resources = re.search(r"\n    resources:\n((?:        .*\n|\s*\n)*)", block)
            kinds[name] = RuleKind(
                benchmark=bench.group(1) if bench else None,
                local=bool(re.search(r"\n    localrule: True\n", block)),
                device='runtime=config["runtime"]' in block,
                own_mem=bool(resources and re.search(r"^\s+mem_mb\s*=", resources.group(1), re.M)),
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
    for key in ("partition", "account", "gpu_partition", "gpu_model", "gres"):
        if not isinstance(site[key], str):
            raise ProfileError(f"{path}: key {key} must be a string, got {site[key]!r}")
    for key in ("gpus", "jobs"):
        if isinstance(site[key], bool) or not isinstance(site[key], int) or site[key] < (key == "jobs"):
            raise ProfileError(f"{path}: key {key} must be an integer >= {int(key == 'jobs')}, got {site[key]!r}")
    scale = site["runtime_scale"]
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale < math.inf:
        raise ProfileError(f"{path}: key runtime_scale must be a number > 0, got {scale!r}")
    for key in ("partition", "account", "gpu_partition"):
        if re.search(r"[\s,'\"]", site[key]):
            raise ProfileError(f"{path}: key {key} must be one name (no spaces, commas or quotes), got {site[key]!r}")
    if not site["partition"]:
        raise ProfileError(f"{path}: key partition is empty (`sinfo -s` lists your cluster's partitions)")
    _check_gpu_request(path, site)
    return site


def _check_gpu_request(path: Path, site: dict[str, Any]) -> None:
    """gpu_partition, gpu_model and gres agree with gpus and with what sbatch and the plugin accept."""
    gpus, model, gres = site["gpus"], site["gpu_model"], site["gres"]
    if model and not GPU_MODEL_RE.fullmatch(model):
        raise ProfileError(f"{path}: key gpu_model must be a GPU type like a100 (letters, digits, _ and .), "
                           f"got {model!r}")
    if gres:
        match = GRES_RE.fullmatch(gres)
        if not match:
            raise ProfileError(f"{path}: key gres must be a GPU GRES gpu:<n> or gpu:<type>:<n> (sbatch --gres), "
                               f"or '' for --gpus; got {gres!r}")
        if gpus == 0:
            raise ProfileError(f"{path}: key gres is {gres!r} but gpus is 0 (a CPU-only cluster): set gpus to "
                               f"its count or gres to ''")
        if int(match["count"]) != gpus:
            raise ProfileError(f"{path}: key gres asks for {match['count']} GPUs per job, key gpus for {gpus}: "
                               "make them agree")
        if (match["type"] or "") != model:
            raise ProfileError(f"{path}: key gres names GPU type {match['type'] or '(any)'!r}, key gpu_model "
                               f"{model or '(any)'!r}: make them agree (with gres, the type goes into gres)")
    if gpus > 0 and not site["gpu_partition"]:
        raise ProfileError(f"{path}: key gpu_partition is empty but gpus is {gpus} (`sinfo -s` lists your "
                           "partitions; gpus: 0 for a CPU-only cluster)")


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
        if kinds[rule].own_mem:
            del res["mem_mb"]  # the rule's own (per-model) mem_mb: set-resources would override it
        if kinds[rule].device:
            res |= gpu_request(site)
        out[rule] = res
    return dict(sorted(out.items()))


def gpu_request(site: dict[str, Any]) -> dict[str, Any]:
    """A model job's GPU resources for the plugin: the GPU partition with --gres=<gres> or --gpus=[<model>:]<n>,
    never --ntasks-per-gpu (tasks_per_gpu 0). `gpu` is always written, since the rules carry their own (1 when
    the *submitting* host has CUDA, workflow/rules/common.smk MODEL_GPUS), which must not add a second --gpus
    next to --gres, nor a GPU request on a CPU-only cluster (gpus 0: gpu 0, no partition of its own)."""
    if site["gpus"] == 0:
        return {"gpu": 0}
    if site["gres"]:
        request: dict[str, Any] = {"gres": site["gres"], "gpu": 0}
    else:
        request = {"gpu": site["gpus"]} | ({"gpu_model": site["gpu_model"]} if site["gpu_model"] else {})
    return {"slurm_partition": site["gpu_partition"]} | request | {"tasks_per_gpu": 0}


def render(site: dict[str, Any], measured: pd.DataFrame, kinds: dict[str, RuleKind], measured_from: str) -> str:
    """The profile's YAML text."""
    profile = {
        "executor": "slurm",
        "jobs": site["jobs"],
        "latency-wait": 60,
        "rerun-triggers": ["mtime", "params", "input", "code"],
        "rerun-incomplete": True,
        "default-resources": {"slurm_partition": site["partition"], "slurm_account": site["account"],
                              "mem_mb": MEM_MIN, "runtime": TIME_MIN},
        "set-resources": set_resources(site, measured, kinds),
    }
    cluster = {name: k for name, k in sorted(kinds.items()) if not k.local}
    own_mem = ", ".join(name for name, k in cluster.items() if k.own_mem) or "none"
    notes = [f"mem_mb: none here for the rules that size their own memory per model ({own_mem}): the rule's "
             "`resources: mem_mb` applies (set-resources would override it); the other rules' is measured."]
    if site["gpus"] > 0:
        flags = f"--gres={site['gres']}" if site["gres"] else (
            f"--gpus={site['gpu_model'] + ':' if site['gpu_model'] else ''}{site['gpus']}")
        notes.append(f"GPU: the rules that run a model on runtime.device "
                     f"({', '.join(n for n, k in cluster.items() if k.device)}) go to partition "
                     f"{site['gpu_partition']} with {flags}"
                     + (" (gpu: 0 overrides the rule's own gpu)" if site["gres"] else "")
                     + "; tasks_per_gpu: 0 = no --ntasks-per-gpu (Slurm >= 23 rejects it beside --cpus-per-task). "
                     "No other rule gets a GPU.")
    else:
        notes.append("GPU: none (gpus: 0 in site.yaml): every job goes to the CPU partition; gpu: 0 overrides the "
                     "model rules' own gpu (1 when the submitting host has CUDA).")
    header = (
        "# Slurm profile: GENERATED by `python -m iclgd.tools.slurm_profile` (make slurm-profile); do not edit.\n"
        "# Site settings: site.yaml beside this file. Per-rule requests: measured.tsv, peak RSS x "
        f"{MEM_MARGIN:g} and wall x {TIME_MARGIN:g} x runtime_scale,\n# measured on: {measured_from}.\n"
        + "".join(textwrap.fill(note, 110, initial_indent="# ", subsequent_indent="#   ") + "\n" for note in notes)
        + "# Rules with `localrule: True` run on the submitting host. README \"Running on a cluster\".\n"
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
