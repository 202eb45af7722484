"""Calibration of the claims table's tests against simulated data with a known answer.

For every test the claims table runs: its rejection rate under a simulated null (should be alpha within
Monte Carlo error), its simulated power against the planner's prediction (the mean over simulated data sets
of `iclgd.core.power.power_at` from each data set's own fit), and the equivalence test's rate of calling an
effect "absent" when the true effect equals the reference (must stay at or below alpha). Two deliberately
wrong tests show that the checks can fail: the crossed t without its example level (a t over set means) and
a binomial test of a head against a constant-vote rate measured on the same queries.

`make calibrate` runs the full calibration (`--n-sim 1000`) and prints the table README quotes; the test
suite runs a smaller one with tolerances widened to its size (tests/core/test_calibration.py).
"""

from __future__ import annotations

import argparse
from typing import Callable

import numpy as np
import pandas as pd
from scipy import stats as sps
from tqdm import tqdm

from iclgd.core import crossed, power, stats

ALPHA = 0.05
S, E = 5, 48  # demonstration sets x test examples per setting, as the default run
#: (sd of set effects, of example effects, of the residual) on the gap's scale
SCENARIOS = {"set-dominated": (0.15, 0.03, 0.3), "example-dominated": (0.01, 0.2, 0.3), "mixed": (0.08, 0.1, 0.3)}


def grid(rng: np.random.Generator, sds: tuple[float, float, float], effect: float = 0.0, s: int = S,
         e: int = E) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values, set ids, example ids) of one setting's S x E gaps: set + example + residual (Gaussian)."""
    sets, examples = np.repeat(np.arange(s), e), np.tile(np.arange(e), s)
    y = (effect + rng.normal(0, sds[0], s)[sets] + rng.normal(0, sds[1], e)[examples]
         + rng.normal(0, sds[2], s * e))
    return y, sets, examples


def binary_grid(rng: np.random.Generator, effect: float = 0.0, s: int = S, e: int = E
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ICL - GD correctness (each 0/1) on S x E: an example difficulty both arms share, a set effect on
    ICL's logit and an example x method effect; `effect` shifts ICL's logit (0: equal accuracy by symmetry)."""
    sets, examples = np.repeat(np.arange(s), e), np.tile(np.arange(e), s)
    difficulty = rng.normal(0.4, 1.2, e)
    icl_logit = difficulty[examples] + rng.normal(0, 0.6, s)[sets] + rng.normal(0, 0.8, e)[examples] + effect
    gd_logit = difficulty[examples] + rng.normal(0, 0.6, s)[sets] + rng.normal(0, 0.8, e)[examples]
    draw = lambda logit: (rng.random(len(logit)) < 1 / (1 + np.exp(-logit))).astype(float)  # noqa: E731
    return draw(icl_logit) - draw(gd_logit), sets, examples


def crossed_p(y, sets, examples) -> float:
    return crossed.mean_test(y, sets, examples)["p"]


def set_means_p(y, sets, examples) -> float:
    """The anti-conservative stand-in: a t over the S set means, blind to the example level."""
    means = np.bincount(sets, weights=y) / np.bincount(sets)
    return float(sps.ttest_1samp(means, 0).pvalue)


def rate(draw: Callable[[np.random.Generator], float], n_sim: int, seed: int, desc: str) -> float:
    rng = np.random.default_rng(seed)
    return float(np.mean([draw(rng) for _ in tqdm(range(n_sim), desc=desc, leave=False, disable=None)]))


def null_rates(n_sim: int, seed: int = 0) -> dict[str, float]:
    """Rejection rate at ALPHA under the null, per test and scenario."""
    out = {}
    for name, sds in SCENARIOS.items():
        out[f"crossed t, {name}"] = rate(lambda r: crossed_p(*grid(r, sds)) < ALPHA, n_sim, seed, name)
    out["crossed t, 0/1 data"] = rate(lambda r: crossed_p(*binary_grid(r)) < ALPHA, n_sim, seed, "binary")
    out["crossed t, pooled over 8 settings"] = rate(lambda r: pooled(r)["p"] < ALPHA, n_sim, seed, "pooled")
    out["Welch F over 8 settings"] = rate(lambda r: heterogeneity(r)["p"] < ALPHA, n_sim, seed, "welch")
    out["t over contexts (0/1-derived gaps)"] = rate(lambda r: stats.t_one_sample(contexts(r))["p"] < ALPHA,
                                                     n_sim, seed, "contexts")
    out["exact McNemar, head vs constant"] = rate(lambda r: head_vs_constant(r)[0] < ALPHA, n_sim, seed, "mcnemar")
    out["WRONG: t over set means, example-dominated"] = rate(
        lambda r: set_means_p(*grid(r, SCENARIOS["example-dominated"])) < ALPHA, n_sim, seed, "set means")
    out["WRONG: binomial vs plug-in constant rate"] = rate(lambda r: head_vs_constant(r)[1] < ALPHA, n_sim, seed,
                                                          "plug-in")
    return out


def settings_data(rng: np.random.Generator, shifts: np.ndarray) -> tuple[np.ndarray, ...]:
    """2 models x 2 datasets x 2 k, five sets per (dataset, k) shared by the models, 48 examples per dataset
    shared by models and k; `shifts` (8) is each setting's true mean gap."""
    ys, ss, es, gs = [], [], [], []
    sds = SCENARIOS["mixed"]
    set_fx = rng.normal(0, sds[0], (2, 2, S))
    ex_fx = rng.normal(0, sds[1], (2, E))
    for i, (model, dataset, k) in enumerate(np.ndindex(2, 2, 2)):
        sets, examples = np.repeat(np.arange(S), E), np.tile(np.arange(E), S)
        y = shifts[i] + set_fx[dataset, k][sets] + ex_fx[dataset][examples] + rng.normal(0, sds[2], S * E)
        ys.append(y)
        ss.append(dataset * 100 + k * 10 + sets)
        es.append(dataset * 1000 + examples)
        gs.append(np.full(S * E, i))
    return tuple(np.concatenate(a) for a in (ys, ss, es, gs))


def pooled(rng: np.random.Generator, effect: float = 0.0) -> dict:
    y, s, e, g = settings_data(rng, np.full(8, effect))
    return crossed.mean_test(y, s, e, g)


def heterogeneity(rng: np.random.Generator, spread: float = 0.0) -> dict:
    shifts = spread * np.array([1, -1, 1, -1, -1, 1, -1, 1], dtype=float)
    y, s, e, g = settings_data(rng, shifts)
    return crossed.heterogeneity_test(y, s, e, g, n_draws=200)


def contexts(rng: np.random.Generator, effect: float = 0.0, n: int = 10) -> np.ndarray:
    """Per-context gap: mean agreement over 5 late positions minus agreement at position 1, both 0/1 with a
    per-context rate (null: the same rate at both)."""
    base = 0.8 * rng.beta(4, 4, n)  # below 0.8, so base + effect (<= 0.2) stays a rate: the mean gap is `effect`
    late = rng.binomial(5, base + effect) / 5
    return late - rng.binomial(1, base)


def head_vs_constant(rng: np.random.Generator, n: int = 24, effect: float = 0.0) -> tuple[float, float]:
    """(exact McNemar p, plug-in binomial p) of a head that agrees with ICL as often as a constant vote
    (null) plus `effect`, both measured on the same n held-out queries, independently of each other."""
    const = rng.random(n) < 0.6
    head = rng.random(n) < 0.6 + effect
    mc = stats.mcnemar_greater(head, const)["p"]
    plug = float(sps.binomtest(int(head.sum()), n, max(const.mean(), 1e-9), alternative="greater").pvalue)
    return mc, plug


def power_checks(n_sim: int, seed: int = 0) -> pd.DataFrame:
    """Simulated power vs the planner's prediction, per test, at an effect with moderate power. The planner is
    given the truth: the true effect on the gap's scale (the mean estimate over the simulated data sets; the
    estimators are unbiased) and the true variance parts (the fitted parts averaged over the data sets). A
    single run's plan uses its own noisy fit instead; this checks the power formula, not that noise."""
    rows = []
    for name, effect, draw, plan in (
        ("crossed t, mixed", 0.12, lambda r, d: grid(r, SCENARIOS["mixed"], d), _crossed_plan),
        ("crossed t, 0/1 data", 0.6, lambda r, d: binary_grid(r, d), _crossed_plan),
        ("t over contexts", 0.2, lambda r, d: (contexts(r, d),), _t_plan),
    ):
        rng = np.random.default_rng(seed)
        fits = [plan(*draw(rng, effect)) for _ in tqdm(range(n_sim), desc=name, leave=False, disable=None)]
        true = float(np.mean([t["effect"] for t, _ in fits]))
        rejected = [t["p"] < ALPHA and t["effect"] > 0 for t, _ in fits]
        rows.append({"test": name, "true effect": true, "simulated": float(np.mean(rejected)),
                     "predicted": power.power_at(_average([pl for _, pl in fits]), true, ALPHA)})
    return pd.DataFrame(rows)


def _average(plans: list[dict]) -> dict:
    """One plan with the variance parts (or the variance) averaged over simulated fits."""
    first = plans[0]
    if first["test"] == "t":
        return first | {"sd": float(np.sqrt(np.mean([p["sd"] ** 2 for p in plans])))}
    parts = [p["parts"] for p in plans]
    mean = lambda f: float(np.mean([getattr(pt, f) for pt in parts]))  # noqa: E731
    return first | {"parts": crossed.Parts(set=mean("set"), example=mean("example"), residual=mean("residual"),
                                           df_set=parts[0].df_set, df_example=parts[0].df_example,
                                           df_both=parts[0].df_both)}


def _crossed_plan(y, sets, examples):
    test = crossed.mean_test(y, sets, examples)
    return test, {"test": "crossed-t", "parts": test["parts"], "n": S}


def _t_plan(values):
    test = stats.t_one_sample(values)
    return test, {"test": "t", "n": test["n"], "sd": test["sd"]}


def tost_at_reference(n_sim: int, seed: int = 0, reference: float = 0.1) -> dict[str, float]:
    """Rate of "absent" (equivalence p < ALPHA) when the true effect equals the reference: at most ALPHA."""
    def crossed_absent(r):
        t = crossed.mean_test(*grid(r, SCENARIOS["mixed"], reference))
        return stats.tost_p(t["effect"], t["se"], t["df"], reference, 0) < ALPHA

    def t_absent(r):
        t = stats.t_one_sample(contexts(r, reference, n=30))
        return stats.tost_p(t["effect"], t["se"], t["df"], reference, 1) < ALPHA

    return {"crossed t (TOST)": rate(crossed_absent, n_sim, seed, "tost crossed"),
            "t over contexts (non-superiority)": rate(t_absent, n_sim, seed, "tost t")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-sim", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    se = np.sqrt(ALPHA * (1 - ALPHA) / args.n_sim)
    print(f"null rejection rates at alpha {ALPHA} ({args.n_sim} data sets each; ±2.2 SE = ±{2.2 * se:.3f}):")
    for name, value in null_rates(args.n_sim, args.seed).items():
        print(f"  {name:45s} {value:.3f}")
    print("power, simulated vs predicted by the planner:")
    print(power_checks(args.n_sim, args.seed).to_string(index=False))
    print("equivalence: rate of 'absent' when the true effect equals the reference (<= alpha):")
    for name, value in tost_at_reference(args.n_sim, args.seed).items():
        print(f"  {name:45s} {value:.3f}")


if __name__ == "__main__":
    main()
