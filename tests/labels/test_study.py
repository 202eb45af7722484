"""Study labels' hooks (iclgd.labels.study), through `config.resolve`: the novel task as one of its datasets
(alone too), its sources checked against the registry, and one label word per source."""

from __future__ import annotations

import pytest

from config_support import REPO, run_config
from iclgd.core.config import ConfigError, resolve


def test_the_novel_task_alone_runs_alone(tmp_path):
    run = resolve(run_config(tmp_path, labels={"datasets": ["novel"]}), REPO)
    assert run.studies["labels"].datasets == ("novel",)


@pytest.mark.parametrize(
    "novel,key",
    [
        ({"sources": ["sst2", "imdb"]}, "labels.novel.sources"),
        ({"words": ["a", "b", "c"]}, "labels.novel.words"),
    ],
)
def test_a_bad_novel_task_names_the_key(tmp_path, novel, key):
    with pytest.raises(ConfigError, match=f"config key {key}"):
        resolve(run_config(tmp_path, labels={"novel": novel}), REPO)
