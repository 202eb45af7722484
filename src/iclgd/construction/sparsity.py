"""Weight sparsity: the hand-constructed GD weights versus the attention weights of pretrained LMs.

Shen et al. 2023 ("Do pretrained Transformers learn in-context by gradient descent?", arXiv 2310.08540) argue that
the von Oswald et al. 2023 construction (W_Q = W_K = [[I,0],[0,0]], W_V = [[0,0],[W_0,-I]]) is far sparser than
anything found in pretrained LMs: at N_x = N_y = 4096 (LLaMa-7B) W_K and W_Q have 4096 nonzeros out of 8192^2
(>99.99% sparse) and W_V about 75%. `constructed_sparsity` gives those counts analytically; `sparsity_table` and
`model_attention_sparsity` measure the fraction of |w| below thresholds (construction.thresholds; Shen et al.:
1e-2 ... 1e-6) in actual weights.
"""

from __future__ import annotations

import re
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

PROJECTIONS = ("q_proj", "k_proj", "v_proj")
_LAYER_INDEX = re.compile(r"(?:^|\.)(\d+)\.")


def _abs_tensor(w: torch.Tensor | np.ndarray) -> torch.Tensor:
    w = torch.as_tensor(w).detach()
    return w.abs() if w.is_floating_point() else w.abs().double()


def _rows(name: str, w: torch.Tensor | np.ndarray, thresholds: Sequence[float]) -> list[dict]:
    a = _abs_tensor(w)
    numel = a.numel()
    zeros = numel - int(torch.count_nonzero(a))
    return [
        {
            "name": name,
            "threshold": float(t),
            "fraction_below": int(torch.count_nonzero(a < t)) / numel,
            "n_exact_zero": zeros,
            "numel": numel,
        }
        for t in thresholds
    ]


def sparsity_table(
    weights: Mapping[str, torch.Tensor | np.ndarray], thresholds: Sequence[float]
) -> pd.DataFrame:
    """One row per (weight, threshold): fraction of entries with |w| < threshold, exact zeros, size."""
    rows = [row for name, w in weights.items() for row in _rows(name, w, thresholds)]
    return pd.DataFrame(rows, columns=["name", "threshold", "fraction_below", "n_exact_zero", "numel"])


def constructed_sparsity(d_model: int, n_y: int | None = None, w0_dense: bool = True) -> pd.DataFrame:
    """Exact nonzero counts of the von Oswald construction with N_x = d_model, N_y = n_y (default d_model).

    Counted analytically (no (2d)^2 matrix is built). W_V's W_0 block is counted as dense, Shen et al.'s framing;
    with w0_dense=False (W_0 = 0, von Oswald's default) W_V keeps only its -I block.
    """
    n_x = d_model
    n_y = d_model if n_y is None else n_y
    numel = (n_x + n_y) ** 2
    nonzeros = {
        "W_Q": n_x,
        "W_K": n_x,
        "W_V": (n_x * n_y if w0_dense else 0) + n_y,
        "P": n_y,
    }
    return pd.DataFrame(
        [
            {"name": name, "n_x": n_x, "n_y": n_y, "numel": numel, "nonzeros": nnz, "sparsity": 1 - nnz / numel}
            for name, nnz in nonzeros.items()
        ]
    )


def attention_projections(model: nn.Module, exclude: Sequence[str] = ("vision",)) -> list[tuple[int, str, str, nn.Module]]:
    """(layer, projection, module name, module) for each q/k/v projection; layer parsed from the module name."""
    found = []
    for name, module in model.named_modules():
        proj = name.rsplit(".", 1)[-1]
        if proj not in PROJECTIONS or any(word in name for word in exclude):
            continue
        match = _LAYER_INDEX.search(name)
        if match is None:
            raise ValueError(f"cannot parse a layer index from module name {name!r}")
        found.append((int(match.group(1)), proj, name, module))
    return found


@torch.no_grad()
def model_attention_sparsity(
    model: nn.Module, thresholds: Sequence[float], exclude: Sequence[str] = ("vision",)
) -> pd.DataFrame:
    """Per layer, q_proj/k_proj/v_proj weight sparsity of a Hugging Face causal LM (LLaMa, Gemma 3, GPT-J...)."""
    rows = []
    for layer, proj, name, module in attention_projections(model, exclude):
        for row in _rows(name, module.weight, thresholds):
            rows.append({"layer": layer, "proj": proj, **row})
    if not rows:
        raise ValueError(f"no {PROJECTIONS} modules found in {type(model).__name__}")
    df = pd.DataFrame(rows)
    return df.sort_values(["layer", "proj", "threshold"], ascending=[True, True, False], ignore_index=True)

