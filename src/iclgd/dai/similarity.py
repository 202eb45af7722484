"""Dai et al.'s (2023) similarity metrics between the zero-shot (ZS), ICL and fine-tuned (FT) runs of the
same test queries, as their code (microsoft/LMOps understand_icl/icl_ft/compute_sim.py) defines them:

* SimAOU, per layer: cos(ĥ_ICL − ĥ_ZS, ĥ_FT − ĥ_ZS), ĥ the L2-normalised output of the self-attention
  module at the last token; averaged over examples, then layers. Baseline "random SimAOU": the FT update
  replaced by a uniform [0, 1) vector;
* SimAM: cosine between ICL's and FT's last-token raw (pre-softmax) attention scores over the query's own
  tokens, averaged over heads, examples, then layers. Baseline "ZSL SimAM": ICL against ZS.

(Rec2FTP, the third metric, is `iclgd.core.metrics.rec2ftp`.) Undefined cosines (a zero vector, e.g. a
layer whose update is exactly zero) are NaN, where Dai's code adds 1e-20 to the denominator and reports 0;
means skip NaNs. Plain numpy; the last axis is the compared vector.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Iterator, Sequence

import numpy as np

from iclgd.dai.capture import DaiCapture, DaiError


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine over the last axis; NaN where either vector is zero (undefined, not 0)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise DaiError(f"cannot compare arrays of shapes {a.shape} and {b.shape}")
    den = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a * b).sum(axis=-1) / np.where(den > 0, den, 1.0), np.nan)


def unit(x: np.ndarray) -> np.ndarray:
    """L2-normalise the last axis (Dai's norm_hidden); zero vectors stay zero."""
    x = np.asarray(x, dtype=np.float64)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


def simaou(h_icl: np.ndarray, h_ft: np.ndarray, h_zs: np.ndarray) -> np.ndarray:
    """cos(ĥ_ICL − ĥ_ZS, ĥ_FT − ĥ_ZS) per (query, layer): outputs (Q, L, D) -> (Q, L)."""
    zs = unit(h_zs)
    return cosine(unit(h_icl) - zs, unit(h_ft) - zs)


def random_simaou(h_icl: np.ndarray, h_zs: np.ndarray, seed: int | Sequence[int]) -> np.ndarray:
    """Dai's baseline: cos(ĥ_ICL − ĥ_ZS, u), u ~ uniform [0, 1)^D drawn per (query, layer): (Q, L)."""
    update = unit(h_icl) - unit(h_zs)
    return cosine(update, np.random.default_rng(seed).random(update.shape))


def simam(s_a: np.ndarray, s_b: np.ndarray) -> np.ndarray:
    """Cosine of two runs' raw attention-score rows over the query tokens, mean over heads: (Q, L, H, T) -> (Q, L).

    Both inputs must have the same (right-aligned, zero-padded) layout, which `capture` gives any two runs
    of the same queries. Heads whose cosine is undefined are skipped in the mean.
    """
    sims = cosine(s_a, s_b)
    with np.errstate(invalid="ignore"), _quiet_nanmean():
        return np.nanmean(sims, axis=-1)


@contextlib.contextmanager
def _quiet_nanmean() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Mean of empty slice", RuntimeWarning)
        yield


def per_layer(values: np.ndarray) -> np.ndarray:
    """(Q, L) -> (L,): mean over queries per layer (Dai average examples first, then layers)."""
    with _quiet_nanmean():
        return np.nanmean(np.asarray(values, dtype=np.float64), axis=0)


def query_metrics(
    zs: DaiCapture, icl: DaiCapture, ft: DaiCapture, seed: int | Sequence[int]
) -> dict[str, np.ndarray]:
    """Every per-(query, layer) metric of one prompt set: simaou, random_simaou, simam, zsl_simam -> (Q, L)."""
    if not (np.array_equal(zs.n_query, icl.n_query) and np.array_equal(zs.n_query, ft.n_query)):
        raise DaiError("the three captures are of different queries (query token counts differ)")
    return {
        "simaou": simaou(icl.outputs, ft.outputs, zs.outputs),
        "random_simaou": random_simaou(icl.outputs, zs.outputs, seed),
        "simam": simam(icl.scores, ft.scores),
        "zsl_simam": simam(icl.scores, zs.scores),
    }
