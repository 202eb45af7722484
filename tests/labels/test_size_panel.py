"""The model-size panel from hand-made claims: the points CSV holds exactly the KOSSEN rows with each model's
family, tuning and count, and the figure is written (deterministically)."""

from __future__ import annotations

import pandas as pd

from iclgd.labels import size_panel
from iclgd.labels.claims import KOSSEN

REGISTRY = {"small": {"source": "pypi-gguf", "family": "SmolLM2", "tuning": "instruct"},
            "mid": {"source": "pypi-gguf-chunks", "family": "Gemma 3", "tuning": "pretrained"},
            "big": {"source": "pypi-gguf-parts", "family": "Qwen2.5-Coder", "tuning": "code-instruct"}}
PARAMETERS = {"small": 134_515_008, "mid": 268_098_176, "big": 1_543_714_304}
#: (claim, condition, contrast, metric) of every claims.csv row: the four KOSSEN ones and near misses.
ROWS = [
    ("labels_matter", "random", "default - random", "loglik"),
    ("labels_matter", "random", "default - random", "correct"),  # other metric
    ("flip_learned", "flipped", "last - position 1", "agree_presented"),
    ("flip_learned", "instructed_flipped", "last - position 1", "agree_presented"),  # other condition
    ("flip_learned", "flipped", "default correct - flipped", "agree_presented"),
    ("recency", "default_to_flipped", "D->F - F->D", "correct"),
    ("recency", "default_to_flipped", "D->F - F->D", "loglik"),  # other metric
]


def claims(models=("big", "small", "mid"), datasets=("sst2", "novel")) -> pd.DataFrame:
    """Value i/10 + model index for row i, CI +-0.05: every value says which row it came from."""
    rows = []
    for m_i, model in enumerate(models):
        for dataset in datasets:
            for i, (claim, condition, contrast, metric) in enumerate(ROWS):
                value = m_i + i / 10 + (dataset == "novel") / 100
                rows.append({"model": model, "dataset": dataset, "claim": claim, "condition": condition,
                             "contrast": contrast, "metric": metric, "positions": "5-9", "value": value,
                             "lo": value - 0.05, "hi": value + 0.05, "n": 4})
    return pd.DataFrame(rows)


def test_points_are_the_kossen_rows_with_family_tuning_and_size():
    points = size_panel.size_points(claims(), REGISTRY, PARAMETERS)
    assert list(points.columns) == size_panel.POINT_COLUMNS
    assert len(points) == len(KOSSEN) * 3 * 2
    assert points["contrast"].tolist() == [c for _, c, *_ in KOSSEN for _ in range(6)]
    # within a contrast: by size, then dataset
    assert points["model"].tolist()[:6] == ["small", "small", "mid", "mid", "big", "big"]
    assert points["dataset"].tolist()[:2] == ["novel", "sst2"]
    big = points[(points["model"] == "big") & (points["dataset"] == "sst2")]
    # `big` is model 0 in claims(); KOSSEN rows are ROWS 0, 2, 4, 5
    assert big["effect"].tolist() == [0.0, 0.2, 0.4, 0.5]
    assert (big["hi"] - big["effect"]).round(9).eq(0.05).all()
    assert set(big["family"]) == {"Qwen2.5-Coder"} and set(big["tuning"]) == {"code-instruct"}
    assert set(big["parameters"]) == {1_543_714_304}
    assert set(points[points["contrast"] == "last - position 1"]["metric"]) == {"agree_presented"}


def test_a_model_without_family_falls_back_to_its_name():
    points = size_panel.size_points(claims(models=("tiny-llama",)), {"tiny-llama": {"source": "tiny"}},
                                    {"tiny-llama": 5712})
    assert set(points["family"]) == {"tiny-llama"} and set(points["tuning"]) == {""}
    assert size_panel.legend_name("tiny-llama", "") == "tiny-llama"
    assert size_panel.legend_name("Qwen2.5-Coder", "code-instruct") == "Qwen2.5-Coder (code-instruct)"


def test_the_figure_and_csv_are_written_and_deterministic(tmp_path):
    # `mid` ran on one dataset only (a skipped pair): it just has fewer points
    table = claims()
    table = table[~((table["model"] == "mid") & (table["dataset"] == "novel"))]
    points = size_panel.size_points(table, REGISTRY, PARAMETERS)
    assert len(points) == len(KOSSEN) * 5
    outputs = []
    for run in ("a", "b"):
        pdf, png, csv = (tmp_path / f"{run}.{ext}" for ext in ("pdf", "png", "csv"))
        size_panel.plot_size_panel(points, pdf, png)
        points.to_csv(csv, index=False)
        assert pdf.read_bytes().startswith(b"%PDF") and png.stat().st_size > 0
        outputs.append([p.read_bytes() for p in (pdf, png, csv)])
    assert outputs[0] == outputs[1]
    back = pd.read_csv(tmp_path / "a.csv", keep_default_na=False)
    assert back["model"].tolist() == points["model"].tolist() and back["effect"].tolist() == points["effect"].tolist()


def test_short_counts():
    assert [size_panel._short_count(n) for n in (134_515_008, 1_543_714_304, 6_738_415_616, 5712)] == \
        ["135M", "1.54B", "6.74B", "5.71K"]



def test_a_contrast_the_run_did_not_test_says_so(tmp_path, monkeypatch):
    """config/ladder.yaml runs no flip_halfway: the recency panel says it was not run instead of staying blank."""
    import matplotlib.axes

    table = claims()
    points = size_panel.size_points(table[table["claim"] != "recency"], REGISTRY, PARAMETERS)
    said, original = [], matplotlib.axes.Axes.text
    monkeypatch.setattr(matplotlib.axes.Axes, "text", lambda self, *a, **k: said.append((self, a[2])) or original(self, *a, **k))
    size_panel.plot_size_panel(points, tmp_path / "p.pdf")
    assert [(ax.get_title().split(":")[0], text) for ax, text in said] == [("recency", "not run in this configuration")]
