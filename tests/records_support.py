"""Shared by the comparison and order-spread tests: one scored record with its label probabilities and top-10
tokens, as the ICL and fine-tuning rules write them."""

from __future__ import annotations

import numpy as np


def rec(uid, label_probs, ids, probs, *, method="icl", k=2, seed=0, order=0, optimizer="none", lr=0.0,
        label_index=0, full_correct=False):
    """One record; label_logprobs are the logs of the given full-vocabulary label-token probabilities."""
    lp = np.log(np.asarray(label_probs, dtype=float))
    return {
        "model": "m", "dataset": "d", "method": method, "k": k, "seed": seed, "order": order,
        "optimizer": optimizer, "subset": "all" if method == "finetune" else "none", "lr": lr, "epoch": 0,
        "uid": uid, "label": "x", "label_index": label_index, "pred_index": int(np.argmax(lp)),
        "label_logprobs": lp, "argmax_id": ids[0], "argmax_token": "t", "full_correct": full_correct,
        "top10_ids": np.asarray(ids), "top10_probs": np.asarray(probs, dtype=float), "n_tokens": 5,
    }
