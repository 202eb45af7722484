"""The kernel-regression experiment (Han et al. 2023) on one model x dataset: `run_kernel`.

On the pipeline's test split plus `n_train_queries` extra queries drawn from the training split
(disjoint from every demonstration and from the kNN pool), with `n_demos` demonstrations:

1. where attention goes: the last token's attention per layer x head, averaged over queries and
   demonstrations as a 30-point profile over each demo's input span, and its mass on the label
   tokens / inputs / first token / query / the rest (`attention.capture`);
2. attention as kernel weights: every head's reconstruction argmax Σ a_i e(y_i) / Σ a_i, its
   agreement with the ICL prediction and accuracy vs gold; the best head is picked on the selection
   part (`select_fraction` of the queries) and scored on the disjoint evaluation part;
3. the per-head Pearson r between a_i and sim(x, x_i) = P(o|x)ᵀP(o|x_i);
4. ridge probes (λ = `ridge_lambda`) of the best head's layer: keys -> argmax P(o|x_i) and
   values -> y_i at label position + offset;
5. kernel regression on all-MiniLM-L6-v2 sentence embeddings and on the model's hidden state;
6. the phenomena the theory explains, on `extras_datasets` ([] = all): (`knn`) ICL with each
   held-out query's k nearest (MiniLM) training rows as demonstrations vs the random ones, paired
   McNemar, and the best head's agreement under both; (`symbols`) the same demonstrations and
   queries with the label words replaced by meaningless single-token symbols: ICL accuracy, the
   word-selected head and a head selected afresh under symbols.

Han et al. sample one prompt per test point; here each query uses one of `n_prompt_sets`
demonstration sets (query j -> set j mod n), so the prefix KV cache is shared within a set.
Settings come from the validated `kernel` config block (config/schema.yaml). Each analysis is one
function of `iclgd.kernel.analyses`; `run_kernel` builds their inputs and the summary row.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from iclgd.core import prompts
from iclgd.kernel import analyses
from iclgd.kernel.analyses import HeadScan, RunInputs
from iclgd.kernel.embeddings import load_sentence_encoder
from iclgd.kernel.prompt_sets import draw_train_queries
from iclgd.kernel.summaries import accuracy, mean_profile

log = logging.getLogger(__name__)

SUMMARY_COLUMNS = [
    "model", "dataset", "n_queries", "n_select", "n_eval", "n_demos", "n_prompt_sets", "n_layers", "n_heads",
    "icl_acc", "icl_eval_acc", "best_layer", "best_head", "select_agreement", "eval_agreement", "eval_accuracy",
    "best_head_label_mass", "best_head_input_mass", "best_head_sim_r",
    "minilm_kr_acc", "minilm_kr_eval_acc", "minilm_kr_eval_agreement",
    "hidden_kr_acc", "hidden_kr_eval_acc", "hidden_kr_eval_agreement",
    "probe_key_acc", "probe_value_acc",
    # more queries: where they come from, the held-out agreement's CI and its constant-prediction baseline
    "n_test_queries", "n_train_queries", "n_eval_test", "eval_agreement_lo", "eval_agreement_hi",
    "eval_const_agreement", "eval_agreement_p",
    # the head vs that constant on the same held-out queries (paired; exact McNemar in eval_agreement_p)
    "eval_head_only", "eval_const_only", "eval_diff", "eval_diff_lo", "eval_diff_hi", "eval_diff_tost_lo",
    "eval_diff_tost_hi", "eval_diff_se",
    # kNN-retrieved vs random demonstrations on the evaluation part (effect = kNN - random)
    "knn_n", "knn_acc", "random_acc", "knn_diff", "knn_diff_lo", "knn_diff_hi", "knn_p",
    "knn_head_agreement", "knn_head_accuracy", "random_head_agreement", "random_head_accuracy",
    # label symbols vs words, same demonstrations and queries (effect = symbols - words, all queries)
    "symbols", "sym_icl_acc", "sym_diff", "sym_diff_lo", "sym_diff_hi", "sym_p", "sym_icl_eval_acc",
    "sym_best_layer", "sym_best_head", "sym_eval_agreement", "sym_eval_accuracy",
    "word_head_sym_eval_agreement", "word_head_sym_eval_accuracy",
]


def assign_sets(n_queries: int, n_sets: int) -> np.ndarray:
    """Query j uses demonstration set j mod n_sets."""
    return np.arange(n_queries) % max(1, n_sets)


def extras_on(cfg: dict[str, Any], dataset: str) -> bool:
    """Whether the costly extras (kNN, symbols) run on `dataset`: `extras_datasets` [] means all."""
    chosen = cfg["extras_datasets"]
    return not chosen or dataset in chosen


def run_kernel(model, tokenizer, train: pd.DataFrame, test: pd.DataFrame, spec: dict[str, Any], cfg: dict[str, Any],
               metrics: dict[str, Any], model_name: str) -> dict[str, pd.DataFrame]:
    """Analyses 1-6 on one model x dataset; returns {summary, heads, profile, probes} frames (compact).

    cfg: the validated `kernel` config block; metrics: the `metrics` block (bootstrap size and level)."""
    name = spec["name"]
    if cfg["n_queries"] is not None:
        test = test.iloc[: int(cfg["n_queries"])]
    extras = extras_on(cfg, name)
    do_knn, symbols = extras and bool(cfg["knn"]), list(cfg["symbols"]) if extras else []
    run, extra, pool = _run_inputs(model, tokenizer, train, test, spec, cfg, metrics, do_knn)
    log.info("%s/%s: %d queries (%d test, %d train), %d demonstration sets", model_name, name, len(run.queries),
             len(test), len(extra), int(cfg["n_prompt_sets"]))
    scan = analyses.scan_heads(run)  # 1-2
    _log_best_head(f"{model_name}/{name}", scan)
    zero = analyses.zero_shot_runs(run, int(cfg["hidden_layer"]))
    heads = analyses.score_heads(run, scan, zero)  # 3
    probes, at_label = analyses.probe_kv(run, scan, zero, heads, [int(offset) for offset in cfg["probe_offsets"]],
                                         cfg["ridge_lambda"])  # 4
    encoder = load_sentence_encoder(str(model.device))
    minilm_pred, hidden_pred, query_emb = analyses.kernel_baselines(run, train, encoder, scan, zero)  # 5
    knn = _knn_columns(run, scan, encoder, pool, query_emb, int(cfg["n_demos"]), do_knn, model_name)  # 6a
    sym = _symbol_columns(run, scan, symbols, model_name)  # 6b
    pred, gold, eval_idx = scan.captured["pred"], scan.captured["gold"], scan.eval_idx
    summary = pd.DataFrame([{
        "model": model_name, "dataset": name, "n_demos": int(cfg["n_demos"]),
        "n_prompt_sets": int(cfg["n_prompt_sets"]),
        **_count_columns(run, scan, len(test), len(extra)), **_best_head_columns(scan, heads),
        "minilm_kr_acc": accuracy(minilm_pred, gold), "minilm_kr_eval_acc": accuracy(minilm_pred, gold, eval_idx),
        "minilm_kr_eval_agreement": accuracy(minilm_pred, pred, eval_idx),
        "hidden_kr_acc": accuracy(hidden_pred, gold), "hidden_kr_eval_acc": accuracy(hidden_pred, gold, eval_idx),
        "hidden_kr_eval_agreement": accuracy(hidden_pred, pred, eval_idx),
        "probe_key_acc": float(at_label.get("key->prediction", np.nan)),
        "probe_value_acc": float(at_label.get("value->label", np.nan)),
        **scan.held, **knn, **sym,
    }])[SUMMARY_COLUMNS]
    tags = {"model": model_name, "dataset": name}
    profile = mean_profile(scan.captured["profile"])
    return {"summary": summary, "heads": _tagged(heads, tags), "profile": _tagged(profile, tags),
            "probes": _tagged(probes, tags)}


def _run_inputs(model, tokenizer, train: pd.DataFrame, test: pd.DataFrame, spec: dict[str, Any], cfg: dict[str, Any],
                metrics: dict[str, Any], do_knn: bool) -> tuple[RunInputs, pd.DataFrame, pd.DataFrame]:
    """The demonstration sets and the queries every analysis shares: the test rows plus extra training-split
    queries disjoint from every demonstration (and from the kNN pool). Returns (inputs, extra queries, pool)."""
    seed, n_sets = int(cfg["seed"]), int(cfg["n_prompt_sets"])
    sets = prompts.build_prompt_sets(spec["name"], spec, train, test.iloc[:0], [int(cfg["n_demos"])],
                                     range(seed, seed + n_sets))
    used = {demo["uid"] for prompt_set in sets for demo in prompt_set["demos"]}
    extra, pool = draw_train_queries(train, used, int(cfg["n_train_queries"]),
                                     int(cfg["knn_pool"]) if do_knn else 0, seed)
    query_rows = pd.concat([test, extra], ignore_index=True)
    queries = [{"uid": int(row["uid"]), "label": row["label"], "query": prompts.render_query(spec["template"], row)}
               for row in query_rows.to_dict("records")]
    for prompt_set in sets:
        prompt_set["queries"] = queries
    run = RunInputs(model, tokenizer, spec, sets, query_rows, queries, assign_sets(len(queries), n_sets), seed,
                    (int(metrics["n_boot"]), float(metrics["ci"])), cfg["select_fraction"])
    return run, extra, pool


def _log_best_head(run_name: str, scan: HeadScan) -> None:
    """Say which head won and how its held-out agreement compares with the constant vote."""
    best, held = scan.best, scan.held
    log.info("%s: best head %d.%d, eval agreement %.3f [%.3f, %.3f] (constant %.3f, p %.3g), accuracy %.3f "
             "(ICL %.3f)", run_name, best.layer, best.head, best.eval_agreement, held["eval_agreement_lo"],
             held["eval_agreement_hi"], held["eval_const_agreement"], held["eval_agreement_p"], best.eval_accuracy,
             best.icl_eval_accuracy)


def _knn_columns(run: RunInputs, scan: HeadScan, encoder, pool: pd.DataFrame, query_emb: np.ndarray,
                 n_demos: int, do_knn: bool, model_name: str) -> dict[str, Any]:
    """6a's summary columns: kNN-retrieved vs random demonstrations on the held-out queries (NaN if not run)."""
    knn = {column: float("nan") for column in SUMMARY_COLUMNS if column.startswith(("knn_", "random_"))}
    if do_knn:
        knn.update(analyses.knn_vs_random(run, scan, encoder, pool, query_emb, n_demos))
        best = scan.best
        log.info("%s/%s: kNN demos ICL acc %.3f vs random %.3f on %d held-out queries (p %.3g); head %d.%d "
                 "agreement %.3f vs %.3f", model_name, run.spec["name"], knn["knn_acc"], knn["random_acc"],
                 len(scan.eval_idx), knn["knn_p"], best.layer, best.head, knn["knn_head_agreement"],
                 best.eval_agreement)
    return knn


def _symbol_columns(run: RunInputs, scan: HeadScan, symbols: list[str], model_name: str) -> dict[str, Any]:
    """6b's summary columns: label words vs meaningless symbols, same demonstrations and queries (NaN and no
    symbols if not run)."""
    sym: dict[str, Any] = {column: float("nan") for column in SUMMARY_COLUMNS
                           if column.startswith(("sym_", "word_head_sym_"))}
    sym["symbols"] = ""
    if symbols:
        sym.update(analyses.symbols_vs_words(run, scan, symbols))
        best = scan.best
        log.info("%s/%s: symbols %s ICL acc %.3f vs words %.3f (p %.3g); best head %d.%d agreement %.3f; word "
                 "head %d.%d agreement %.3f", model_name, run.spec["name"], sym["symbols"], sym["sym_icl_acc"],
                 accuracy(scan.captured["pred"], scan.captured["gold"]), sym["sym_p"], sym["sym_best_layer"],
                 sym["sym_best_head"], sym["sym_eval_agreement"], best.layer, best.head,
                 sym["word_head_sym_eval_agreement"])
    return sym


def _count_columns(run: RunInputs, scan: HeadScan, n_test: int, n_extra: int) -> dict[str, int]:
    """How many queries each part holds and where they come from, and the model's layers x heads."""
    weights = scan.captured["a"]
    return {"n_queries": len(run.queries), "n_select": len(scan.select_idx), "n_eval": len(scan.eval_idx),
            "n_layers": weights.shape[1], "n_heads": weights.shape[2], "n_test_queries": n_test,
            "n_train_queries": n_extra, "n_eval_test": int((scan.eval_idx < n_test).sum())}


def _best_head_columns(scan: HeadScan, heads: pd.DataFrame) -> dict[str, Any]:
    """ICL's accuracy and the best head's agreement, accuracy, attention mass and similarity r."""
    best = scan.best
    best_row = heads[(heads["layer"] == best.layer) & (heads["head"] == best.head)].iloc[0]
    return {"icl_acc": accuracy(scan.captured["pred"], scan.captured["gold"]), "icl_eval_acc": best.icl_eval_accuracy,
            "best_layer": best.layer, "best_head": best.head, "select_agreement": best.select_agreement,
            "eval_agreement": best.eval_agreement, "eval_accuracy": best.eval_accuracy,
            "best_head_label_mass": best_row["mass_label"], "best_head_input_mass": best_row["mass_input"],
            "best_head_sim_r": best_row["sim_r"]}


def _tagged(frame: pd.DataFrame, tags: dict[str, str]) -> pd.DataFrame:
    """The frame with the run's model and dataset as its first columns."""
    frame.insert(0, "dataset", tags["dataset"])
    frame.insert(0, "model", tags["model"])
    return frame
