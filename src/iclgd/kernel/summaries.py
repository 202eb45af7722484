"""One run's captures reduced to what it reports: the per-head table, the mean attention profile,
the probe table, and the held-out statistics (bootstrap CI, constant-vote baseline, McNemar).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from iclgd.core.stats import bootstrap_ci, mcnemar, mcnemar_greater
from iclgd.kernel.attention import MASS_PARTS
from iclgd.kernel.heads import head_scores
from iclgd.kernel.probes import probe_heads

def mean_profile(profile: np.ndarray) -> pd.DataFrame:
    """(Q, L, H, n, P) resampled attention -> tidy (layer, head, position, attention) means."""
    mean = np.asarray(profile, dtype=np.float64).mean(axis=(0, 3))  # (L, H, P)
    L, H, P = mean.shape
    layer, head, pos = np.meshgrid(np.arange(L), np.arange(H), np.arange(P), indexing="ij")
    return pd.DataFrame({"layer": layer.ravel(), "head": head.ravel(), "position": pos.ravel(),
                         "attention": mean.ravel()})


def head_table(a, demo_labels, pred, gold, n_classes, sel, ev, mass, sim_r) -> pd.DataFrame:
    """One row per (layer, head): selection / evaluation agreement and accuracy, mass split, sim r."""
    on_sel = head_scores(a[sel], demo_labels[sel], pred[sel], gold[sel], n_classes)
    on_ev = head_scores(a[ev], demo_labels[ev], pred[ev], gold[ev], n_classes)
    L, H = on_sel["agreement"].shape
    layer, head = np.meshgrid(np.arange(L), np.arange(H), indexing="ij")
    frame = pd.DataFrame({
        "layer": layer.ravel(), "head": head.ravel(),
        "select_agreement": on_sel["agreement"].ravel(), "select_accuracy": on_sel["accuracy"].ravel(),
        "eval_agreement": on_ev["agreement"].ravel(), "eval_accuracy": on_ev["accuracy"].ravel(),
        "sim_r": np.asarray(sim_r).ravel(),
    })
    mean_mass = np.asarray(mass, dtype=np.float64).mean(axis=0)  # (L, H, parts)
    for j, part in enumerate(MASS_PARTS):
        frame[f"mass_{part}"] = mean_mass[..., j].ravel()
    return frame


def probe_table(keys: np.ndarray, values: np.ndarray, key_target, value_target, offsets, lam, seed) -> pd.DataFrame:
    """Ridge probes per (offset, kv head): keys -> zero-shot prediction, values -> demo label."""
    rows = []
    for target, feats, y in (("key->prediction", keys, key_target), ("value->label", values, value_target)):
        res = probe_heads(feats, np.asarray(y, dtype=np.int64), lam, seed=seed)
        for o, offset in enumerate(offsets):
            for h in range(feats.shape[2]):
                rows.append({"target": target, "offset": int(offset), "kv_head": h,
                             "train_accuracy": res["train_accuracy"][o, h], "test_accuracy": res["test_accuracy"][o, h],
                             "n_train": int(res["n_train"][o, h]), "n_test": int(res["n_test"][o, h])})
    return pd.DataFrame(rows)


def accuracy(pred, gold, idx=None) -> float:
    """Fraction of `pred` equal to `gold` (on `idx` when given); NaN on no rows."""
    pred, gold = np.asarray(pred), np.asarray(gold)
    if idx is not None:
        pred, gold = pred[idx], gold[idx]
    return float((pred == gold).mean()) if len(pred) else float("nan")


def eval_agreement_stats(agree: np.ndarray, pred_ev: np.ndarray, pred_sel: np.ndarray, seed: int, n_boot: int,
                         ci: float) -> dict[str, float]:
    """Held-out agreement with a bootstrap CI, against the agreement of a constant 'head' that always
    votes the class ICL predicts most on the selection part, measured on the same held-out queries: a
    one-sided exact McNemar of head-agrees vs constant-agrees (paired), with the discordant counts and the
    paired difference's t intervals (95 % and 90 %) for the claims table."""
    agree = np.asarray(agree, dtype=float)
    _, lo, hi = bootstrap_ci(agree, n_boot, ci, seed)
    majority = np.bincount(np.asarray(pred_sel, dtype=np.int64)).argmax()
    const_agree = np.asarray(pred_ev) == majority
    test = mcnemar_greater(agree.astype(bool), const_agree)
    return {"eval_agreement_lo": lo, "eval_agreement_hi": hi, "eval_const_agreement": float(const_agree.mean()),
            "eval_agreement_p": test["p"], "eval_head_only": test["n_a_only"], "eval_const_only": test["n_b_only"],
            "eval_diff": test["effect"], "eval_diff_lo": test["effect_lo"], "eval_diff_hi": test["effect_hi"],
            "eval_diff_tost_lo": test["tost_lo"], "eval_diff_tost_hi": test["tost_hi"], "eval_diff_se": test["se"]}


def paired_test(a_correct: np.ndarray, b_correct: np.ndarray, seed: int, prefix: str, n_boot: int,
                ci: float) -> dict[str, float]:
    """McNemar (iclgd.core.stats) of two ways of prompting on the same queries: effect = acc(a) - acc(b)."""
    res = mcnemar(a_correct, b_correct, n_boot, seed, ci)
    return {f"{prefix}_diff": res["effect"], f"{prefix}_diff_lo": res["effect_lo"],
            f"{prefix}_diff_hi": res["effect_hi"], f"{prefix}_p": res["p"]}


def head_eval(a, demo_labels, pred, gold, n_classes, layer: int, head: int) -> tuple[float, float]:
    """(agreement with ICL, accuracy) of one head's reconstruction on the given queries."""
    res = head_scores(a[:, layer : layer + 1, head : head + 1], demo_labels, pred, gold, n_classes)
    return float(res["agreement"][0, 0]), float(res["accuracy"][0, 0])
