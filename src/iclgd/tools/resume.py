"""Make the same command resume a run that was killed hard (power loss, the OOM killer, `kill -9`).

Such a run leaves Snakemake's lock in `<dir>/.snakemake/locks/` and its unfinished outputs marked
incomplete. `python -m iclgd.tools.resume --directory DIR` removes the lock (what `snakemake --unlock`
does) only when no Snakemake process of that working directory is alive, and says so in one line; the
profile's `rerun-incomplete: true` then reruns the unfinished jobs. A live run keeps its lock, and
Snakemake refuses to start a second one there, as it should.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import psutil

LOCKS = Path(".snakemake") / "locks"


def process_workdir(cmdline: list[str], cwd: str) -> Path:
    """The working directory a Snakemake command line runs in: its --directory/-d, else its cwd."""
    for i, arg in enumerate(cmdline):
        if arg in ("--directory", "-d") and i + 1 < len(cmdline):
            return (Path(cwd) / cmdline[i + 1]).resolve()
        if arg.startswith("--directory="):
            return (Path(cwd) / arg.split("=", 1)[1]).resolve()
    return Path(cwd).resolve()


def is_snakemake(cmdline: list[str]) -> bool:
    """A Snakemake process (its CLI script, `python -m snakemake`) or a script job it started (run from
    .snakemake/scripts). A shell that merely names snakemake in its command string is neither."""
    cli = any(os.path.basename(arg) == "snakemake" for arg in cmdline[:2]) or cmdline[1:3] == ["-m", "snakemake"]
    return cli or any(".snakemake/scripts/" in arg for arg in cmdline)


def live_snakemake(workdir: Path) -> list[int]:
    """Pids of live Snakemake processes (and jobs) working in `workdir`, this process excepted."""
    workdir, found = workdir.resolve(), []
    for proc in psutil.process_iter(["pid", "cmdline", "cwd", "status"]):
        info = proc.info
        if info["pid"] == os.getpid() or not info["cmdline"] or info["status"] == psutil.STATUS_ZOMBIE:
            continue
        if is_snakemake(info["cmdline"]) and info["cwd"] and process_workdir(info["cmdline"], info["cwd"]) == workdir:
            found.append(info["pid"])
    return found


def resume(workdir: Path) -> str:
    """Remove a stale lock of `workdir`; return the one line that says what was done (empty: nothing)."""
    locks = sorted((workdir / LOCKS).glob("*.lock")) if (workdir / LOCKS).is_dir() else []
    if not locks:
        return ""
    alive = live_snakemake(workdir)
    if alive:
        return (f"resume: {workdir} is locked by a live Snakemake (pid {', '.join(map(str, alive))}); "
                "left as it is")
    for lock in locks:
        lock.unlink()
    return (f"resume: {workdir} held a stale lock from a run that was killed (no Snakemake alive there): "
            "unlocked; its unfinished jobs rerun (rerun-incomplete)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--directory", type=Path, default=Path("."), help="the run's working directory")
    line = resume(parser.parse_args(argv).directory)
    if line:
        print(line)


if __name__ == "__main__":
    main()
