"""Expected results: a finished reference run's small outputs, shipped in `expected/<name>/`.

`python -m iclgd.tools.expected --name smoke` copies runs/smoke's small outputs (`compare_runs.
SMALL_OUTPUTS`) and writes MANIFEST.json beside them: the run's commit, a hash of the code and of the
config that produced it, the machine (CPU, cores, torch, threads) and the date; CLAIMS.md lists the
claims for a reader. `make verify` compares a reviewer's run with them; `make expected RUN=<name>`
refreshes them after a measured reference run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from iclgd.core.provenance import git_commit, sha256_file
from iclgd.tools.claims_summary import claims_markdown, family_studies
from iclgd.tools.compare_runs import small_outputs

REPO = Path(__file__).resolve().parents[3]
EXPECTED = REPO / "expected"
#: What the numbers depend on: the workflow, the science library (tooling excluded: it computes no
#: result), the config schema and registry, and the pinned packages.
CODE = ("Snakefile", "workflow", "src/iclgd", "config/schema.yaml", "config/datasets.yaml", "requirements.txt",
        "requirements.lock", "requirements-models.txt", "pyproject.toml")
_NOT_CODE = ("src/iclgd/tools/", "__pycache__/", ".egg-info/")
MANIFEST = "MANIFEST.json"
#: The reviewer's claim list (iclgd.tools.claims_summary), written beside the manifest.
CLAIMS_PAGE = "CLAIMS.md"


def run_dir(name: str, repo: Path = REPO) -> Path:
    """Where `make` runs a config: the default config in the repository root, the others in runs/<name>."""
    return repo if name == "default" else repo / "runs" / name


def code_files(repo: Path = REPO) -> list[Path]:
    """The files `code_sha256` reads, sorted; found by walking, so a copy without .git hashes the same."""
    files = []
    for top in CODE:
        root = repo / top
        for path in [root] if root.is_file() else sorted(root.rglob("*")):
            rel = path.relative_to(repo).as_posix()
            if path.is_file() and not rel.endswith(".pyc") and not any(n in rel + "/" for n in _NOT_CODE):
                files.append(path)
    return sorted(files, key=lambda p: p.relative_to(repo).as_posix())


def code_sha256(repo: Path = REPO) -> str:
    """sha256 over the code's paths and bytes: equal hashes ran the same code, committed or not."""
    digest = hashlib.sha256()
    for path in code_files(repo):
        digest.update(path.relative_to(repo).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def configfiles_sha256(configfiles: list[str], repo: Path = REPO) -> str:
    """sha256 of the named config files' bytes (config/<name>, in the run's order): the same settings in
    any checkout, where the resolved config's hash also holds the checkout's absolute data path."""
    digest = hashlib.sha256()
    for name in configfiles:
        path = repo / "config" / name
        digest.update(name.encode() + b"\0" + (path.read_bytes() if path.is_file() else b"(missing)") + b"\0")
    return digest.hexdigest()


def run_threads(run: Path, configfiles: list[str], repo: Path = REPO) -> int:
    """The torch threads each model job asked for (`runtime.threads`; `--cores` caps it)."""
    from iclgd.core.config_files import load_config

    overrides = [repo / "config" / f for f in configfiles if f != "config.yaml"]
    return int(load_config(repo, *overrides)["runtime"]["threads"])


def manifest(run: Path, name: str, files: list[str], repo: Path = REPO) -> dict[str, Any]:
    """What the expected results came from; the run's own provenance record supplies commit and machine."""
    prov = json.loads((run / "results/paper/provenance.json").read_text())
    env = prov["environment"]
    finished = dt.datetime.fromtimestamp((run / "paper/generated/macros.json").stat().st_mtime, dt.timezone.utc)
    return {
        "name": name,
        "refresh": f"make expected RUN={name}",
        "commit": prov["commit"],
        "code_sha256": code_sha256(repo),
        "config_sha256": prov["config_sha256"],
        "configfiles_sha256": configfiles_sha256(prov["configfiles"], repo),
        "configfiles": prov["configfiles"],
        "machine": {"cpu": env["cpu"], "cores": env["cpu cores"], "memory": env["memory"], "gpu": env["gpu"],
                    "torch": env["package torch"], "python": env["python"],
                    "threads": run_threads(run, prov["configfiles"], repo)},
        "run_finished": finished.isoformat(timespec="seconds"),
        "files": {rel: sha256_file(run / rel) for rel in files},
        "claim_studies": family_studies(run),
    }


def refresh(name: str, run: Path, dest: Path, repo: Path = REPO) -> dict[str, Any]:
    """Replace `dest` by the run's small outputs and their manifest; refuses a run that is not finished."""
    if not (run / "results/paper/provenance.json").is_file() or not (run / "paper/generated/macros.json").is_file():
        raise SystemExit(f"{run}: not a finished run (results/paper/provenance.json or paper/generated/macros.json "
                         f"missing); run `make {'reproduce' if name == 'default' else name}` first")
    files = small_outputs(run)
    record = manifest(run, name, files, repo)
    if record["commit"].endswith("-dirty") or git_commit(repo) != record["commit"]:
        print(f"note: the run came from {record['commit']}, the checkout is at {git_commit(repo)}: "
              "code_sha256 hashes the checkout, so refresh from a run of it")
    shutil.rmtree(dest, ignore_errors=True)
    for rel in files:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(run / rel, dest / rel)
    (dest / MANIFEST).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    (dest / CLAIMS_PAGE).write_text(claims_markdown(run, name, repo))
    return record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="default", help="the run: default (repository root) or runs/<name>")
    parser.add_argument("--run", type=Path, help="the run directory (default: from --name)")
    args = parser.parse_args(argv)
    run = args.run or run_dir(args.name)
    record = refresh(args.name, run, EXPECTED / args.name)
    print(f"expected/{args.name}: {len(record['files'])} files from {run} (commit {record['commit']}, "
          f"code {record['code_sha256'][:12]}, config {record['config_sha256'][:12]})")


if __name__ == "__main__":
    main()
