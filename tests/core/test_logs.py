"""A Snakemake script's log routing (iclgd.core.logs): logging records and stderr both land in the rule's log
file, whose directory is made."""

from __future__ import annotations

import logging
import sys

import pytest

from iclgd.core import logs


@pytest.fixture
def restored(monkeypatch):
    """Give back stderr and the root logger's handlers after `to_file` replaced them."""
    stderr = sys.stderr
    monkeypatch.setattr(sys, "stderr", stderr)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)
    if sys.stderr is not stderr:
        sys.stderr.close()  # the log file to_file opened


def test_logging_and_stderr_land_in_the_rules_log_file(tmp_path, restored):
    path = tmp_path / "logs" / "rule" / "job.log"  # its directory does not exist yet
    log = logs.to_file(path)
    assert log.name == "iclgd"
    log.info("scored %d queries", 3)
    logging.getLogger("iclgd.core.forward").debug("below INFO: not written")
    print("a tqdm bar", file=sys.stderr)
    sys.stderr.flush()
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0].endswith(" INFO scored 3 queries") and lines[1] == "a tqdm bar" and len(lines) == 2
