"""Run provenance (iclgd.core.provenance): the scale paragraph written from the run's config -- each study's
`scale` hook, what ran and then what was left out -- and the appendix's helpers."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import pytest

from iclgd.core import provenance

REPO = Path(__file__).resolve().parents[2]


def scale_run(config: dict, tmp_path, **blocks):
    from iclgd.core.config import resolve

    config = copy.deepcopy(config) | {"data": {**config["data"], "mirror_dir": str(tmp_path)}}
    for name, values in blocks.items():
        config[name] = config[name] | values
    return resolve(config, REPO)


def test_scale_paragraph_states_the_run_from_config(default_config, tmp_path):
    from iclgd.core import provenance

    run = scale_run(default_config, tmp_path, finetune={"models": ["smollm2-135m"], "demo_seeds": [0],
                                                        "optimizers": ["gd"], "subsets": ["all"], "lrs": [1e-4],
                                                        "max_epochs": 5, "lrs_by_model": {"gemma3-270m": [1e-3]}},
                    labels={"models": ["smollm2-135m"], "n_demos": 17, "repetitions": 16})
    text = provenance.scale_paragraph(run)
    assert "Fine-tuning ran for smollm2-135m (of smollm2-135m, gemma3-270m) on demonstration seeds 0" in text
    assert "5 epochs" in text and "below 0.2 nats" in text and "smollm2-135m: 0.0001" in text
    assert "17 demonstrations and 16 random contexts" in text and "left out" not in text.lower()


def test_scale_paragraph_lists_what_was_left_out(default_config, tmp_path):
    from iclgd.core import provenance

    run = scale_run(default_config, tmp_path, finetune={"skip": [{"model": "gemma3-270m", "optimizer": "adam",
                                                                  "subset": "all"}]},
                    labels={"n_demos": 33, "skip": [{"model": "gemma3-270m", "dataset": "sst2"}]},
                    order={"skip": [{"model": "smollm2-135m", "optimizer": "adam"}]},
                    kernel={"n_demos": 16, "skip": [{"model": "gemma3-270m", "dataset": "agnews"}]})
    text = provenance.scale_paragraph(run)
    assert "adam on all of gemma3-270m" in text and "adam for smollm2-135m" in text and "gemma3-270m on sst2" in text
    assert "kernel study because 16 demonstrations" in text and "gemma3-270m on agnews" in text


def test_benchmarks_are_read_per_job_and_summed_for_the_appendix(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    header = "s\th:m:s\tmax_rss\tmax_vms\n"
    Path("benchmarks/icl/m").mkdir(parents=True)
    Path("benchmarks/icl/m/sst2.tsv").write_text(header + "60.0\t0:01:00\t512.0\t900\n")
    Path("benchmarks/claims.tsv").write_text(header + "30.0\t0:00:30\t-\t-\n")  # ended before a sample
    bench = provenance.read_benchmarks(["benchmarks/icl/m/sst2.tsv", "benchmarks/claims.tsv", "benchmarks/none.tsv"])
    assert bench[["rule", "job", "seconds"]].values.tolist() == [["icl", "m/sst2", 60.0], ["claims", "--", 30.0]]
    assert bench["max_rss_mb"].iloc[0] == 512.0 and bench["max_rss_mb"].isna().iloc[1]
    assert provenance.appendix_macros(bench) == {"BenchTotalMinutes": "1.5", "BenchMaxRssGb": "0.5"}
    assert provenance.appendix_macros(bench.iloc[:0]) == {"BenchTotalMinutes": "0", "BenchMaxRssGb": "0"}
    Path("benchmarks/bad.tsv").write_text("x\n1\n")
    with pytest.raises(ValueError, match="not a Snakemake benchmark file"):
        provenance.read_benchmarks(["benchmarks/bad.tsv"])


def test_config_hash_ignores_key_order_and_sha256_file_is_the_files_digest(tmp_path):
    assert provenance.config_hash({"a": 1, "b": [2, 3]}) == provenance.config_hash({"b": [2, 3], "a": 1})
    assert provenance.config_hash({"a": 1}) != provenance.config_hash({"a": 2})
    (tmp_path / "f").write_bytes(b"abc" * 100_000)
    assert provenance.sha256_file(tmp_path / "f") == hashlib.sha256(b"abc" * 100_000).hexdigest()

