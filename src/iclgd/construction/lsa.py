"""What training one linear self-attention (LSA) layer on the ICL objective finds, against one step of GD.

von Oswald et al. 2023 ("Transformers learn in-context by gradient descent") construct LSA weights whose
forward pass is exactly one GD step (`iclgd.construction.lsa_construction`) and observe that an LSA layer
trained on linear-regression prompts converges to that step. Shen et al. 2023 ("Do pretrained Transformers
learn in-context by gradient descent?", arXiv 2310.08540) note that these weights are very sparse, that the
step size P = eta/N is undefined for N = 0, and that the construction is exactly invariant to the order of
the demonstrations, unlike ICL in real LMs. `lsa_study` reproduces the von Oswald observation and measures
order sensitivity of both the constructed and the trained layer.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from iclgd.construction.lsa_construction import (
    WEIGHT_NAMES, constructed_weights, gd_step_prediction, lsa_forward, make_tokens,
)
from iclgd.construction.sparsity import sparsity_table


# --------------------------------------------------------------------------------------------- ICL objective


@dataclass
class LSAConfig:
    """The validated `construction.lsa` config block (config/schema.yaml holds the defaults: von Oswald
    et al.'s setting, d = 10 and N = 20, trained in well under 2 minutes on 2 CPU cores)."""

    d: int
    n_demos: int
    steps: int
    batch_size: int
    adam_lr: float
    init_std: float
    eval_every: int
    n_eval: int
    n_lr_search: int
    order_tasks: int
    order_perms: int
    seed: int

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any] | LSAConfig) -> LSAConfig:
        if isinstance(cfg, LSAConfig):
            return cfg
        return cls(**{f.name: cfg[f.name] for f in fields(cls)})


@dataclass
class Tasks:
    """A batch of linear-regression prompts y = w.x, x ~ U(-1,1)^d, w ~ N(0, I) (von Oswald et al.)."""

    x_ctx: Tensor
    y_ctx: Tensor
    x_q: Tensor
    y_q: Tensor

    def tokens(self) -> Tensor:
        return make_tokens(self.x_ctx, self.y_ctx, self.x_q)

    def permuted(self, perm: Tensor) -> Tasks:
        return Tasks(self.x_ctx[:, perm], self.y_ctx[:, perm], self.x_q, self.y_q)

    def to(self, dtype: torch.dtype) -> Tasks:
        return Tasks(*(t.to(dtype) for t in (self.x_ctx, self.y_ctx, self.x_q, self.y_q)))


def sample_tasks(n_tasks: int, d: int, n_ctx: int, generator: torch.Generator, dtype=torch.float32) -> Tasks:
    """Fresh tasks from `generator` only, so every batch is reproducible from the seed."""
    w = torch.randn(n_tasks, d, 1, generator=generator, dtype=dtype)
    x = torch.rand(n_tasks, n_ctx + 1, d, generator=generator, dtype=dtype) * 2 - 1
    y = x @ w
    return Tasks(x[:, :-1], y[:, :-1], x[:, -1], y[:, -1])


def regression_loss(pred: Tensor, target: Tensor) -> Tensor:
    """0.5 * mean squared error over tasks, von Oswald et al.'s convention."""
    return 0.5 * ((pred - target) ** 2).sum(-1).mean()


def best_gd_lr(tasks: Tasks) -> float:
    """Exact 1-D line search for the one-step GD learning rate from W_0 = 0 on a batch of tasks.

    The prediction eta * g (g = x_q^T (1/N) sum_i y_i x_i) is linear in eta, so the loss is a quadratic in eta
    whose minimiser sum(y_q g) / sum(g^2) is the exact optimum of the search.
    """
    g = gd_step_prediction(tasks.x_ctx, tasks.y_ctx, tasks.x_q, 1.0).double()
    return float((tasks.y_q.double() * g).sum() / (g * g).sum())


class LinearSelfAttention(nn.Module):
    """A single LSA layer with all four (d+1) x (d+1) matrices learned, no softmax, no positional encoding."""

    def __init__(self, dim: int, init_std: float, generator: torch.Generator, n_y: int = 1):
        super().__init__()
        self.n_y = n_y
        self.mats = nn.ParameterDict(
            {name: nn.Parameter(torch.randn(dim, dim, generator=generator) * init_std) for name in WEIGHT_NAMES}
        )

    def forward(self, tokens: Tensor) -> Tensor:
        return lsa_forward(tokens, self.mats, self.n_y)

    def weights(self, dtype: torch.dtype = torch.float64) -> dict[str, Tensor]:
        return {name: p.detach().to(dtype).clone() for name, p in self.mats.items()}


def _query_sensitivity(predict, tasks: Tasks) -> tuple[Tensor, Tensor]:
    """Predictions and d yhat / d x_q per task (each task's prediction depends on its own x_q only)."""
    x_q = tasks.x_q.detach().clone().requires_grad_(True)
    pred = predict(Tasks(tasks.x_ctx, tasks.y_ctx, x_q, tasks.y_q))
    (grad,) = torch.autograd.grad(pred.sum(), x_q)
    return pred.detach(), grad


def compare_to_gd(weights: Mapping[str, Tensor], tasks: Tasks, gd_lr: float) -> dict[str, float]:
    """von Oswald et al.'s alignment metrics between an LSA layer and one GD step, in float64."""
    tasks = tasks.to(torch.float64)
    weights = {k: v.to(torch.float64) for k, v in weights.items()}
    pred_lsa, sens_lsa = _query_sensitivity(lambda t: lsa_forward(t.tokens(), weights), tasks)
    pred_gd, sens_gd = _query_sensitivity(lambda t: gd_step_prediction(t.x_ctx, t.y_ctx, t.x_q, gd_lr), tasks)
    cos = nn.functional.cosine_similarity
    return {
        "lsa_loss": float(regression_loss(pred_lsa, tasks.y_q)),
        "gd_loss": float(regression_loss(pred_gd, tasks.y_q)),
        "pred_l2": float((pred_lsa - pred_gd).norm(dim=-1).mean()),
        "pred_rel_l2": float((pred_lsa - pred_gd).norm() / pred_gd.norm()),
        "pred_cosine": float(cos(pred_lsa.flatten(), pred_gd.flatten(), dim=0)),
        "sens_l2": float((sens_lsa - sens_gd).norm(dim=-1).mean()),
        "sens_cosine": float(cos(sens_lsa, sens_gd, dim=-1).mean()),
    }


@dataclass
class LSAFit:
    """A trained layer, its evaluation history (step, metric, value) and the GD comparator's step size."""

    model: LinearSelfAttention
    history: pd.DataFrame
    gd_lr: float
    eval_tasks: Tasks = field(repr=False)
    seconds: float = 0.0


def fit_lsa(cfg: Mapping[str, Any] | LSAConfig) -> LSAFit:
    """Train one LSA layer with Adam on fresh prompts each step; evaluate against one-step GD every eval_every."""
    cfg = LSAConfig.from_mapping(cfg)
    start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    gen_init, gen_train, gen_eval, gen_lr = (torch.Generator().manual_seed(cfg.seed * 4 + k) for k in range(4))
    eval_tasks = sample_tasks(cfg.n_eval, cfg.d, cfg.n_demos, gen_eval)
    gd_lr = best_gd_lr(sample_tasks(cfg.n_lr_search, cfg.d, cfg.n_demos, gen_lr))
    model = LinearSelfAttention(cfg.d + 1, cfg.init_std, gen_init)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.adam_lr)
    # Cosine decay: at a constant rate Adam's noise keeps the layer ~0.05 away from GD (plateau after ~500 steps).
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(cfg.steps, 1), eta_min=cfg.adam_lr * 1e-2)
    rows: list[tuple[int, str, float]] = []
    for step in range(cfg.steps + 1):
        if step % cfg.eval_every == 0 or step == cfg.steps:
            metrics = compare_to_gd(model.weights(), eval_tasks, gd_lr)
            rows += [(step, name, value) for name, value in metrics.items()]
        if step == cfg.steps:
            break
        batch = sample_tasks(cfg.batch_size, cfg.d, cfg.n_demos, gen_train)
        loss = regression_loss(model(batch.tokens()), batch.y_q)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    history = pd.DataFrame(rows, columns=["step", "metric", "value"])
    return LSAFit(model, history, gd_lr, eval_tasks, time.perf_counter() - start)


def train_lsa(cfg: Mapping[str, Any] | LSAConfig) -> pd.DataFrame:
    """Tidy (step, metric, value) history of LSA-vs-GD alignment during training on the ICL objective."""
    return fit_lsa(cfg).history


# --------------------------------------------------------------------------------------------- order sensitivity


def order_sensitivity_lsa(
    layers: Mapping[str, Mapping[str, Tensor]],
    d: int,
    n_ctx: int,
    n_tasks: int,
    n_perms: int,
    seed: int,
    dtype: torch.dtype = torch.float64,
) -> pd.DataFrame:
    """Per task and layer: std and max-abs spread of the prediction over K random context orderings.

    An LSA layer sums over context tokens without positional information, so any spread is float summation
    order; Shen et al. 2023 contrast this with the order sensitivity of ICL in real LMs.
    """
    gen = torch.Generator().manual_seed(seed)
    tasks = sample_tasks(n_tasks, d, n_ctx, gen, dtype)
    perms = [torch.arange(n_ctx)] + [torch.randperm(n_ctx, generator=gen) for _ in range(n_perms - 1)]
    frames = []
    for name, weights in layers.items():
        weights = {k: v.to(dtype) for k, v in weights.items()}
        preds = torch.stack([lsa_forward(tasks.permuted(p).tokens(), weights)[..., 0] for p in perms])  # (K, tasks)
        frames.append(
            pd.DataFrame(
                {
                    "layer": name,
                    "task": np.arange(n_tasks),
                    "std": preds.std(dim=0, unbiased=False).numpy(),
                    "max_abs_diff": (preds.max(dim=0).values - preds.min(dim=0).values).numpy(),
                    "mean_abs_pred": preds.abs().mean(dim=0).numpy(),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------------------------- study + plot


def lsa_study(
    cfg: Mapping[str, Any] | LSAConfig, thresholds: Sequence[float]
) -> tuple[dict[str, pd.DataFrame], dict[str, float]]:
    """Train on the ICL objective, compare to GD, measure order sensitivity and the weights' sparsity below
    `thresholds` (construction.thresholds); return tables and headline numbers."""
    cfg = LSAConfig.from_mapping(cfg)
    fit = fit_lsa(cfg)
    constructed = constructed_weights(cfg.d, 1, fit.gd_lr, cfg.n_demos)
    layers = {"constructed": constructed, "trained": fit.model.weights()}
    order = order_sensitivity_lsa(layers, cfg.d, cfg.n_demos, cfg.order_tasks, cfg.order_perms, cfg.seed + 1)
    final = fit.history[fit.history.step == fit.history.step.max()].set_index("metric")["value"]
    by_layer = order.groupby("layer")
    headline = {
        "final_pred_l2": final["pred_l2"],
        "final_pred_rel_l2": final["pred_rel_l2"],
        "final_pred_cosine": final["pred_cosine"],
        "final_sens_cosine": final["sens_cosine"],
        "final_sens_l2": final["sens_l2"],
        "lsa_loss": final["lsa_loss"],
        "gd_loss": final["gd_loss"],
        "gd_lr": fit.gd_lr,
        "constructed_vs_gd_pred_l2": compare_to_gd(constructed, fit.eval_tasks, fit.gd_lr)["pred_l2"],
        "order_std_constructed": float(by_layer["std"].mean()["constructed"]),
        "order_std_trained": float(by_layer["std"].mean()["trained"]),
        "order_maxdiff_constructed": float(by_layer["max_abs_diff"].max()["constructed"]),
        "order_maxdiff_trained": float(by_layer["max_abs_diff"].max()["trained"]),
        "train_seconds": fit.seconds,
    }
    weights_np = {f"trained_{k}": v.numpy() for k, v in fit.model.weights(torch.float32).items()}
    weights_np |= {f"constructed_{k}": v.numpy() for k, v in constructed.items()}
    tables = {
        "convergence": fit.history,
        "order_sensitivity": order,
        "weight_sparsity": sparsity_table(weights_np, thresholds),
        "config": pd.DataFrame([asdict(cfg)]),
    }
    return tables, {k: float(v) for k, v in headline.items()}


_PANELS = {
    "loss (0.5 MSE)": ["lsa_loss", "gd_loss"],
    "distance to GD": ["pred_l2", "pred_rel_l2", "sens_l2"],
    "cosine to GD": ["pred_cosine", "sens_cosine"],
}


def plot_lsa_convergence(df: pd.DataFrame, path: str | Path, png: str | Path | None = None) -> Path:
    """Three panels (losses, distances, cosines) of a `train_lsa` history, written as a deterministic PDF."""
    from iclgd.core import figures

    fig, axes = figures.grid(1, len(_PANELS), 2.3)
    for ax, (title, metrics) in zip(axes[0], _PANELS.items()):
        for name, part in df[df.metric.isin(metrics)].groupby("metric", sort=False):
            ax.plot(part["step"], part["value"], label=name.replace("_", " "))
        ax.set(title=title, xlabel="training step", ylabel="")
        if title.startswith("distance"):
            ax.set_yscale("log")
        ax.legend(frameon=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figures.save(fig, path, png)
    return path
