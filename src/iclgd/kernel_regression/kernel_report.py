"""The kernel-regression stage (Han et al. 2023): run the analyses on one model x dataset, then the
figure, Table-2-style table, generated sentences and macros.

`run_kernel` does, on the pipeline's test split plus `n_train_queries` extra queries drawn from the
training split (disjoint from every demonstration and from the kNN pool), with `n_demos`
demonstrations:

1. where attention goes: the last token's attention per layer x head, averaged over queries and
   demonstrations as a 30-point profile over each demo's input span, and its mass on the label
   tokens / inputs / first token / query / the rest (`kernel.capture`);
2. attention as kernel weights: every head's reconstruction argmax Σ a_i e(y_i) / Σ a_i, its
   agreement with the ICL prediction and accuracy vs gold; the best head is picked on the selection
   part (`select_fraction` of the queries) and scored on the disjoint evaluation part;
3. the per-head Pearson r between a_i and sim(x, x_i) = P(o|x)ᵀP(o|x_i);
4. ridge probes (λ = `ridge_lambda`) of the best head's layer: keys -> argmax P(o|x_i) and
   values -> y_i at label position + offset;
5. kernel regression on all-MiniLM-L6-v2 sentence embeddings and on the model's last hidden state;
6. the phenomena the theory explains, on `extras_datasets` ([] = all): (`knn`) ICL with each
   held-out query's k nearest (MiniLM) training rows as demonstrations vs the random ones, paired
   McNemar, and the best head's agreement under both; (`symbols`) the same demonstrations and
   queries with the label words replaced by meaningless single-token symbols: ICL accuracy, the
   word-selected head and a head selected afresh under symbols.

Han et al. sample one prompt per test point; here each query uses one of `n_prompt_sets`
demonstration sets (query j -> set j mod n), so the prefix KV cache is shared within a set.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy.stats import binomtest
from tqdm.auto import tqdm

from iclgd.kernel_regression import kernel
from iclgd.core import forward, prompts
from iclgd.core.figures import save
from iclgd.core.paper import booktabs_table, fmt, latex_escape, latex_text, macro_name
from iclgd.core.stats import bootstrap_ci, mcnemar

log = logging.getLogger(__name__)

#: Config keys of the `kernel` block (pipeline-level `models` / `datasets` aside) and defaults.
DEFAULTS: dict[str, Any] = {
    "n_demos": 16,
    "n_test": None,  # None: the whole test split
    "n_prompt_sets": 2,
    "select_fraction": 0.7,
    "seed": 0,
    "ridge_lambda": 0.01,
    "probe_offsets": list(kernel.PROBE_OFFSETS),
    "hidden_layer": -1,
    "knn": False,
    "knn_pool": 256,
    "n_train_queries": 0,
    "symbols": [],
    "extras_datasets": [],  # [] = every dataset of the stage
}

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
    # kNN-retrieved vs random demonstrations on the evaluation part (effect = kNN - random)
    "knn_n", "knn_acc", "random_acc", "knn_diff", "knn_diff_lo", "knn_diff_hi", "knn_p",
    "knn_head_agreement", "knn_head_accuracy", "random_head_agreement", "random_head_accuracy",
    # label symbols vs words, same demonstrations and queries (effect = symbols - words, all queries)
    "symbols", "sym_icl_acc", "sym_diff", "sym_diff_lo", "sym_diff_hi", "sym_p", "sym_icl_eval_acc",
    "sym_best_layer", "sym_best_head", "sym_eval_agreement", "sym_eval_accuracy",
    "word_head_sym_eval_agreement", "word_head_sym_eval_accuracy",
]


def settings(cfg: dict[str, Any] | None) -> dict[str, Any]:
    """The config block over DEFAULTS (pipeline-level keys dropped)."""
    datasets = (cfg or {}).get("datasets")
    cfg = {k: v for k, v in (cfg or {}).items() if k not in ("models", "datasets")}
    unknown = set(cfg) - set(DEFAULTS)
    if unknown:
        raise kernel.KernelError(f"unknown kernel settings {sorted(unknown)}")
    extras = cfg.get("extras_datasets") or []
    stray = set(extras) - set(datasets if datasets is not None else extras)
    if stray:
        raise kernel.KernelError(f"kernel.extras_datasets names {sorted(stray)}, which kernel.datasets does not run")
    return {**DEFAULTS, **cfg}


def raw_text(row: dict[str, Any], fields: list[str]) -> str:
    """The example's own text fields joined by newlines (what a sentence encoder should see)."""
    return "\n".join(str(row[f]) for f in fields)


def assign_sets(n_queries: int, n_sets: int) -> np.ndarray:
    """Query j uses demonstration set j mod n_sets."""
    return np.arange(n_queries) % max(1, n_sets)


def mean_profile(profile: np.ndarray) -> pd.DataFrame:
    """(Q, L, H, n, P) resampled attention -> tidy (layer, head, position, attention) means."""
    mean = np.asarray(profile, dtype=np.float64).mean(axis=(0, 3))  # (L, H, P)
    L, H, P = mean.shape
    layer, head, pos = np.meshgrid(np.arange(L), np.arange(H), np.arange(P), indexing="ij")
    return pd.DataFrame({"layer": layer.ravel(), "head": head.ravel(), "position": pos.ravel(),
                         "attention": mean.ravel()})


def head_table(a, demo_labels, pred, gold, n_classes, sel, ev, mass, sim_r) -> pd.DataFrame:
    """One row per (layer, head): selection / evaluation agreement and accuracy, mass split, sim r."""
    on_sel = kernel.head_scores(a[sel], demo_labels[sel], pred[sel], gold[sel], n_classes)
    on_ev = kernel.head_scores(a[ev], demo_labels[ev], pred[ev], gold[ev], n_classes)
    L, H = on_sel["agreement"].shape
    layer, head = np.meshgrid(np.arange(L), np.arange(H), indexing="ij")
    frame = pd.DataFrame({
        "layer": layer.ravel(), "head": head.ravel(),
        "select_agreement": on_sel["agreement"].ravel(), "select_accuracy": on_sel["accuracy"].ravel(),
        "eval_agreement": on_ev["agreement"].ravel(), "eval_accuracy": on_ev["accuracy"].ravel(),
        "sim_r": np.asarray(sim_r).ravel(),
    })
    mean_mass = np.asarray(mass, dtype=np.float64).mean(axis=0)  # (L, H, parts)
    for j, part in enumerate(kernel.MASS_PARTS):
        frame[f"mass_{part}"] = mean_mass[..., j].ravel()
    return frame


def probe_table(keys: np.ndarray, values: np.ndarray, key_target, value_target, offsets, lam, seed) -> pd.DataFrame:
    """Ridge probes per (offset, kv head): keys -> zero-shot prediction, values -> demo label."""
    rows = []
    for target, feats, y in (("key->prediction", keys, key_target), ("value->label", values, value_target)):
        res = kernel.probe_heads(feats, np.asarray(y, dtype=np.int64), lam, seed=seed)
        for o, offset in enumerate(offsets):
            for h in range(feats.shape[2]):
                rows.append({"target": target, "offset": int(offset), "kv_head": h,
                             "train_accuracy": res["train_accuracy"][o, h], "test_accuracy": res["test_accuracy"][o, h],
                             "n_train": int(res["n_train"][o, h]), "n_test": int(res["n_test"][o, h])})
    return pd.DataFrame(rows)


def _acc(pred, gold, idx=None) -> float:
    pred, gold = np.asarray(pred), np.asarray(gold)
    if idx is not None:
        pred, gold = pred[idx], gold[idx]
    return float((pred == gold).mean()) if len(pred) else float("nan")


def extras_on(cfg: dict[str, Any], dataset: str) -> bool:
    """Whether the costly extras (kNN, symbols) run on `dataset`: `extras_datasets` [] means all."""
    chosen = cfg.get("extras_datasets") or []
    return not chosen or dataset in chosen


def eval_agreement_stats(agree: np.ndarray, pred_ev: np.ndarray, pred_sel: np.ndarray, seed: int) -> dict[str, float]:
    """Held-out agreement with a bootstrap CI, against the agreement of a constant 'head' that always
    votes the class ICL predicts most on the selection part, with a one-sided exact binomial p-value
    of the agreement exceeding that baseline: tells a real head from chance on few held-out queries."""
    agree = np.asarray(agree, dtype=float)
    _, lo, hi = bootstrap_ci(agree, 2000, 0.95, seed)
    majority = np.bincount(np.asarray(pred_sel, dtype=np.int64)).argmax()
    const = float((np.asarray(pred_ev) == majority).mean())
    if const >= 1:  # ICL itself is constant on the held-out part: no head can beat the baseline
        p = 1.0
    else:
        p = float(binomtest(int(agree.sum()), len(agree), max(const, 1e-12), alternative="greater").pvalue)
    return {"eval_agreement_lo": lo, "eval_agreement_hi": hi, "eval_const_agreement": const, "eval_agreement_p": p}


def paired_test(a_correct: np.ndarray, b_correct: np.ndarray, seed: int, prefix: str) -> dict[str, float]:
    """McNemar (iclgd.core.stats) of two ways of prompting on the same queries: effect = acc(a) - acc(b)."""
    res = mcnemar(a_correct, b_correct, seed=seed)
    return {f"{prefix}_diff": res["effect"], f"{prefix}_diff_lo": res["effect_lo"],
            f"{prefix}_diff_hi": res["effect_hi"], f"{prefix}_p": res["p"]}


def capture_sets(model, tok, sets, queries, which) -> dict[str, np.ndarray]:
    """Capture every query with its demonstration set (query j -> sets[which[j]]), back in query order."""
    caps = {s: kernel.capture(model, tok, ps, [queries[j] for j in np.flatnonzero(which == s)])
            for s, ps in enumerate(sets) if np.any(which == s)}
    order = np.concatenate([np.flatnonzero(which == s) for s in caps])
    inv = np.argsort(order)
    out = {f: np.concatenate([getattr(c, f) for c in caps.values()])[inv]
           for f in ("a", "mass", "profile", "pred", "gold")}
    out["demo_labels"] = np.stack([caps[s].demo_labels for s in which])  # (Q, n)
    return out


def head_eval(a, demo_labels, pred, gold, n_classes, layer: int, head: int) -> tuple[float, float]:
    """(agreement with ICL, accuracy) of one head's reconstruction on the given queries."""
    res = kernel.head_scores(a[:, layer : layer + 1, head : head + 1], demo_labels, pred, gold, n_classes)
    return float(res["agreement"][0, 0]), float(res["accuracy"][0, 0])


def run_kernel(model, tok, train: pd.DataFrame, test: pd.DataFrame, spec: dict[str, Any], cfg: dict[str, Any],
               model_name: str) -> dict[str, pd.DataFrame]:
    """Analyses 1-6 on one model x dataset; returns {summary, heads, profile, probes} frames (compact)."""
    cfg = settings(cfg)
    name = spec["name"]
    seed = int(cfg["seed"])
    if cfg["n_test"] is not None:
        test = test.iloc[: int(cfg["n_test"])]
    n_sets, k = int(cfg["n_prompt_sets"]), int(cfg["n_demos"])
    extras = extras_on(cfg, name)
    do_knn, symbols = extras and bool(cfg["knn"]), list(cfg["symbols"]) if extras else []
    seeds = range(seed, seed + n_sets)
    sets = prompts.build_prompt_sets(name, spec, train, test.iloc[:0], [k], seeds)
    used = {d["uid"] for ps in sets for d in ps["demos"]}
    extra, pool = kernel.draw_train_queries(train, used, int(cfg["n_train_queries"]),
                                            int(cfg["knn_pool"]) if do_knn else 0, seed)
    qrows = pd.concat([test, extra], ignore_index=True)
    queries = [{"uid": int(r["uid"]), "label": r["label"], "query": prompts.render_query(spec["template"], r)}
               for r in qrows.to_dict("records")]
    for ps in sets:
        ps["queries"] = queries
    classes, fields = list(spec["classes"]), list(spec["fields"])
    C = len(classes)
    which = assign_sets(len(queries), n_sets)
    log.info("%s/%s: %d queries (%d test, %d train), %d demonstration sets", model_name, name, len(queries),
             len(test), len(extra), n_sets)

    # 1-2: capture per demonstration set, back in query order
    cap = capture_sets(model, tok, sets, queries, which)
    a, mass, profile, pred, gold, demo_labels = (cap[f] for f in ("a", "mass", "profile", "pred", "gold",
                                                                  "demo_labels"))
    sel, ev = kernel.split_indices(len(queries), cfg["select_fraction"], seed)
    best = kernel.select_heads(a, demo_labels, pred, gold, C, cfg["select_fraction"], seed)
    rec = kernel.reconstruct(a[ev, best.layer, best.head], demo_labels[ev], C)
    held = eval_agreement_stats(rec == pred[ev], pred[ev], pred[sel], seed)
    log.info("%s/%s: best head %d.%d, eval agreement %.3f [%.3f, %.3f] (constant %.3f, p %.3g), accuracy %.3f "
             "(ICL %.3f)", model_name, name, best.layer, best.head, best.eval_agreement, held["eval_agreement_lo"],
             held["eval_agreement_hi"], held["eval_const_agreement"], held["eval_agreement_p"], best.eval_accuracy,
             best.icl_eval_accuracy)

    # 3: prediction similarity
    query_texts = [q["query"] for q in queries]
    demo_texts = [kernel.demo_inputs(ps) for ps in sets]
    label_ids = forward.label_token_ids(tok, sets[0]["label_words"])
    layer = int(cfg["hidden_layer"])
    p_query, q_hid = zero_shot(model, tok, query_texts, label_ids, layer)
    p_demos, d_hid = zip(*[zero_shot(model, tok, t, label_ids, layer) for t in demo_texts])
    sim = np.stack([p_query[j] @ p_demos[s].T for j, s in enumerate(which)])  # (Q, n)
    sim_r = kernel.similarity_correlation(a, sim)
    heads = head_table(a, demo_labels, pred, gold, C, sel, ev, mass, sim_r)

    # 4: ridge probes at the best head's layer
    offsets = [int(o) for o in cfg["probe_offsets"]]
    kv = [kernel.collect_kv(model, tok, ps, best.layer, offsets) for ps in sets]
    keys = np.concatenate([x["keys"] for x in kv])
    values = np.concatenate([x["values"] for x in kv])
    key_target = np.concatenate([p.argmax(axis=1) for p in p_demos])
    value_target = np.concatenate([[classes.index(d["label"]) for d in ps["demos"]] for ps in sets])
    probes = probe_table(keys, values, key_target, value_target, offsets, cfg["ridge_lambda"], seed)
    group = len(heads["head"].unique()) // keys.shape[2]  # query heads per kv head (GQA)
    kv_best = best.head // max(1, group)
    at0 = probes[(probes["offset"] == 0) & (probes["kv_head"] == kv_best)].set_index("target")["test_accuracy"]

    # 5: kernel-regression baselines
    encoder = kernel.load_sentence_encoder(str(model.device))
    by_uid_train = {int(r["uid"]): r for r in train.to_dict("records")}
    q_raw = [raw_text(r, fields) for r in qrows.to_dict("records")]
    d_raw = [[raw_text(by_uid_train[d["uid"]], fields) for d in ps["demos"]] for ps in sets]
    q_emb = encoder.encode(q_raw)
    d_emb = [encoder.encode(t) for t in d_raw]
    minilm_pred, _ = kernel.kernel_regression(q_emb, np.stack([d_emb[s] for s in which]), demo_labels, C)
    hidden_pred, _ = kernel.kernel_regression(q_hid, np.stack([d_hid[s] for s in which]), demo_labels, C)

    # 6a: kNN-retrieved vs random demonstrations, on the held-out queries
    nan = float("nan")
    knn = {c: nan for c in SUMMARY_COLUMNS if c.startswith(("knn_", "random_"))}
    if do_knn:
        knn_cap = knn_capture(model, tok, encoder, pool, spec, [queries[j] for j in ev], q_emb[ev], k, name)
        knn_correct, rand_correct = knn_cap["pred"] == gold[ev], pred[ev] == gold[ev]
        k_agree, k_acc = head_eval(knn_cap["a"], knn_cap["demo_labels"], knn_cap["pred"], gold[ev], C, best.layer,
                                   best.head)
        knn.update({"knn_n": len(ev), "knn_acc": float(knn_correct.mean()), "random_acc": float(rand_correct.mean()),
                    **paired_test(knn_correct, rand_correct, seed, "knn"),
                    "knn_head_agreement": k_agree, "knn_head_accuracy": k_acc,
                    "random_head_agreement": best.eval_agreement, "random_head_accuracy": best.eval_accuracy})
        log.info("%s/%s: kNN demos ICL acc %.3f vs random %.3f on %d held-out queries (p %.3g); head %d.%d "
                 "agreement %.3f vs %.3f", model_name, name, knn["knn_acc"], knn["random_acc"], len(ev), knn["knn_p"],
                 best.layer, best.head, k_agree, best.eval_agreement)

    # 6b: label words vs meaningless symbols, same demonstrations and queries
    sym = {c: nan for c in SUMMARY_COLUMNS if c.startswith(("sym_", "word_head_sym_"))}
    sym["symbols"] = ""
    if symbols:
        kernel.check_label_symbols(tok, symbols, C)
        sym_sets = [kernel.relabel_prompt_set(ps, symbols[:C]) for ps in sets]
        for ps in sym_sets:
            if not kernel.label_tokens_in_prompt(tok, ps):
                raise kernel.KernelError(f"kernel.symbols {symbols[:C]}: a symbol merges with its neighbours in "
                                         "the prompt, so the demonstrations do not show the scored token")
        sc = capture_sets(model, tok, sym_sets, queries, which)
        sym_best = kernel.select_heads(sc["a"], sc["demo_labels"], sc["pred"], gold, C, cfg["select_fraction"], seed)
        w_agree, w_acc = head_eval(sc["a"][ev], sc["demo_labels"][ev], sc["pred"][ev], gold[ev], C, best.layer,
                                   best.head)
        sym.update({"symbols": " ".join(symbols[:C]), "sym_icl_acc": _acc(sc["pred"], gold),
                    **paired_test(sc["pred"] == gold, pred == gold, seed, "sym"),
                    "sym_icl_eval_acc": sym_best.icl_eval_accuracy, "sym_best_layer": sym_best.layer,
                    "sym_best_head": sym_best.head, "sym_eval_agreement": sym_best.eval_agreement,
                    "sym_eval_accuracy": sym_best.eval_accuracy,
                    "word_head_sym_eval_agreement": w_agree, "word_head_sym_eval_accuracy": w_acc})
        log.info("%s/%s: symbols %s ICL acc %.3f vs words %.3f (p %.3g); best head %d.%d agreement %.3f; word head "
                 "%d.%d agreement %.3f", model_name, name, sym["symbols"], sym["sym_icl_acc"], _acc(pred, gold),
                 sym["sym_p"], sym_best.layer, sym_best.head, sym_best.eval_agreement, best.layer, best.head, w_agree)

    best_row = heads[(heads["layer"] == best.layer) & (heads["head"] == best.head)].iloc[0]
    summary = pd.DataFrame([{
        "model": model_name, "dataset": name, "n_queries": len(queries), "n_select": len(sel), "n_eval": len(ev),
        "n_demos": k, "n_prompt_sets": n_sets, "n_layers": a.shape[1], "n_heads": a.shape[2],
        "icl_acc": _acc(pred, gold), "icl_eval_acc": best.icl_eval_accuracy,
        "best_layer": best.layer, "best_head": best.head, "select_agreement": best.select_agreement,
        "eval_agreement": best.eval_agreement, "eval_accuracy": best.eval_accuracy,
        "best_head_label_mass": best_row["mass_label"], "best_head_input_mass": best_row["mass_input"],
        "best_head_sim_r": best_row["sim_r"],
        "minilm_kr_acc": _acc(minilm_pred, gold), "minilm_kr_eval_acc": _acc(minilm_pred, gold, ev),
        "minilm_kr_eval_agreement": _acc(minilm_pred, pred, ev),
        "hidden_kr_acc": _acc(hidden_pred, gold), "hidden_kr_eval_acc": _acc(hidden_pred, gold, ev),
        "hidden_kr_eval_agreement": _acc(hidden_pred, pred, ev),
        "probe_key_acc": float(at0.get("key->prediction", np.nan)),
        "probe_value_acc": float(at0.get("value->label", np.nan)),
        "n_test_queries": len(test), "n_train_queries": len(extra), "n_eval_test": int((ev < len(test)).sum()),
        **held, **knn, **sym,
    }])[SUMMARY_COLUMNS]
    for frame in (heads, probes):
        frame.insert(0, "dataset", name)
        frame.insert(0, "model", model_name)
    prof = mean_profile(profile)
    prof.insert(0, "dataset", name)
    prof.insert(0, "model", model_name)
    return {"summary": summary, "heads": heads, "profile": prof, "probes": probes}


@torch.inference_mode()
def zero_shot(model, tok, texts, label_ids, layer: int = -1, batch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """P(o|x) over the label tokens and the `layer` hidden state at the last token of each text run
    alone, from one batched forward (what `kernel.label_distribution` and `kernel.hidden_features`
    compute separately): (N, C) rows summing to 1, (N, hidden) float32.

    Texts are batched in length order (RTE's long premises padded to a batch's longest text cost
    3x the real tokens) and the output head sees only each row's last real token (`forward.head_at`)."""
    ids = [forward.encode_prefix(tok, t) for t in texts]
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    order = np.argsort([len(x) for x in ids], kind="stable")
    probs = np.zeros((len(ids), len(label_ids)), dtype=np.float32)
    hidden: np.ndarray | None = None
    for start in range(0, len(ids), batch_size):
        rows_idx = order[start : start + batch_size]
        batch = [ids[i] for i in rows_idx]
        last = torch.tensor([len(x) - 1 for x in batch], device=model.device)
        out = forward.forward_at(model, batch, pad_id=pad, hidden_states=True)
        logp = torch.log_softmax(out.logits[:, 0].float(), dim=-1)[:, label_ids]
        probs[rows_idx] = torch.softmax(logp, dim=-1).cpu().numpy()
        h = out.hidden_states[layer][torch.arange(len(batch), device=model.device), last].float().cpu().numpy()
        if hidden is None:
            hidden = np.zeros((len(ids), h.shape[1]), dtype=np.float32)
        hidden[rows_idx] = h
    return probs, hidden if hidden is not None else np.zeros((0, 0), dtype=np.float32)


def knn_capture(model, tok, encoder, pool: pd.DataFrame, spec, queries, q_emb, k: int, name: str = ""
                ) -> dict[str, np.ndarray]:
    """ICL with each query's k nearest pool rows (MiniLM cosine) as demonstrations, most similar last
    (KATE): one full forward per query (no shared prefix). Returns pred, a (Q, L, H, k), demo_labels (Q, k)."""
    rows = pool.to_dict("records")
    pool_emb = encoder.encode([raw_text(r, list(spec["fields"])) for r in rows])
    nearest = kernel.knn_demos(q_emb, pool_emb, k)
    preds, weights, labels = [], [], []
    for query, idx in zip(tqdm(queries, desc="knn", leave=False), nearest):
        ps = kernel.rows_prompt_set(spec, [rows[i] for i in idx[::-1]], [query], name)
        cap = kernel.capture(model, tok, ps, [query])
        preds.append(cap.pred[0])
        weights.append(cap.a[0])
        labels.append(cap.demo_labels)
    return {"pred": np.array(preds, dtype=np.int64), "a": np.stack(weights), "demo_labels": np.stack(labels)}


# ---------------------------------------------------------------------------------------------
# figure, table, sentences, macros
# ---------------------------------------------------------------------------------------------


def plot_heads(heads: pd.DataFrame, summary: pd.DataFrame, pdf: Path, png: Path | None = None) -> None:
    """Per model x dataset: layer x head agreement with ICL on the evaluation part (best head boxed),
    and the layer-averaged split of the last token's attention mass."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    runs = summary[["model", "dataset"]].drop_duplicates().sort_values(["model", "dataset"]).to_records(index=False)
    fig, axes = plt.subplots(2, len(runs), figsize=(3.2 * len(runs), 6.0), squeeze=False)
    colours = dict(zip(kernel.MASS_PARTS, ["tab:red", "tab:blue", "tab:gray", "tab:green", "tab:olive"]))
    for col, (model, dataset) in enumerate(runs):
        part = heads[(heads["model"] == model) & (heads["dataset"] == dataset)]
        grid = part.pivot(index="layer", columns="head", values="eval_agreement").sort_index()
        ax = axes[0, col]
        im = ax.imshow(grid.to_numpy(), aspect="auto", origin="lower", vmin=0, vmax=1, cmap="viridis")
        row = summary[(summary["model"] == model) & (summary["dataset"] == dataset)].iloc[0]
        ax.add_patch(Rectangle((row["best_head"] - 0.5, row["best_layer"] - 0.5), 1, 1, fill=False, ec="red", lw=1.5))
        ax.set(title=f"{model} / {dataset}", xlabel="head", ylabel="layer")
        ax.title.set_fontsize(8)
        fig.colorbar(im, ax=ax, fraction=0.046, label="agreement with ICL (eval part)")
        ax = axes[1, col]
        mass = part.groupby("layer")[[f"mass_{p}" for p in kernel.MASS_PARTS]].mean().sort_index()
        bottom = np.zeros(len(mass))
        for p in kernel.MASS_PARTS:
            ax.barh(mass.index, mass[f"mass_{p}"], left=bottom, color=colours[p], label=p, height=0.9)
            bottom += mass[f"mass_{p}"].to_numpy()
        ax.set(xlim=(0, 1), xlabel="last-token attention mass (mean over heads)", ylabel="layer")
    axes[1, 0].legend(fontsize=6, loc="lower right")
    save(fig, pdf, png)


def tex_symbol(text: str) -> str:
    """Label symbols as LaTeX text inside \\texttt: escapes ^ ~ | \\ { } and latex_escape's set."""
    return latex_text(text)


def fmt_p(p: float) -> str:
    """p-values for text and tables: three decimals, '$<$0.001' below."""
    if pd.isna(p):
        return "--"
    return "$<$0.001" if p < 0.001 else f"{p:.3f}"


def p_math(p: float) -> str:
    """'$p = 0.012$' or '$p < 0.001$' for generated sentences."""
    if pd.isna(p):
        return "$p$ undefined"
    return "$p < 0.001$" if p < 0.001 else f"$p = {p:.3f}$"


def fmt_ci(value: float, lo: float, hi: float, digits: int = 2) -> str:
    """'+0.10 [-0.05, 0.25]' (signed effect with its interval); dash when undefined."""
    if pd.isna(value):
        return "--"
    return f"{value:+.{digits}f} [{fmt(lo, digits)}, {fmt(hi, digits)}]"


def _tt(text: str) -> str:
    return f"\\texttt{{{latex_escape(text)}}}"


def kernel_table_tex(summary: pd.DataFrame) -> str:
    """Table 2 layout (rows model / dataset, evaluation-part fractions), then the phenomena table:
    kNN-retrieved vs random demonstrations and label words vs symbols, where they ran."""
    rows = summary.sort_values(["model", "dataset"])
    frame = pd.DataFrame({
        "model": [_tt(m) for m in rows["model"]],
        "dataset": [_tt(d) for d in rows["dataset"]],
        "$n$": [str(int(n)) for n in rows["n_eval"]],
        "ICL acc.": [fmt(v, 3) for v in rows["icl_eval_acc"]],
        "best head": [f"{int(lay)}.{int(h)}" for lay, h in zip(rows["best_layer"], rows["best_head"])],
        "agreement w.\\ ICL": [fmt(v, 3) for v in rows["eval_agreement"]],
        "constant": [fmt(v, 3) for v in rows["eval_const_agreement"]],
        "$p$": [fmt_p(v) for v in rows["eval_agreement_p"]],
        "rec.\\ acc.": [fmt(v, 3) for v in rows["eval_accuracy"]],
        "KR MiniLM": [fmt(v, 3) for v in rows["minilm_kr_eval_acc"]],
        "KR hidden": [fmt(v, 3) for v in rows["hidden_kr_eval_acc"]],
    })
    main = booktabs_table(
        frame,
        caption=(
            "ICL as kernel regression (Table~2 layout of Han et al.). The best head (layer.head, from 0) is "
            "the one whose attention-weighted label vote agrees most with the ICL prediction on the selection "
            "part; all numbers are fractions on the disjoint evaluation part of $n$ queries (test split and "
            "extra training-split queries, never demonstrations): ICL accuracy, the head's agreement with the "
            "ICL prediction, the agreement of a constant vote for ICL's most frequent selection-part prediction, "
            "the one-sided exact binomial $p$ of the head beating that constant, the head's accuracy, and kernel "
            "regression over the same demonstrations with all-MiniLM-L6-v2 embeddings and with the model's last "
            "hidden state (cosine kernel). Rules: \\texttt{kernel\\_regression}, \\texttt{kernel\\_paper\\_numbers}."
        ),
        label="tab:kernel",
        align="llrrcrrrrrr",
        escape=False,
    )
    ran = rows[rows["knn_acc"].notna() | rows["sym_icl_acc"].notna()]
    if ran.empty:  # keep the label defined; say why it is empty
        ran = rows.iloc[:1].assign(model="(none)", dataset="(kernel.extras\\_datasets)")
    phen = pd.DataFrame({
        "model": [_tt(m) if m != "(none)" else m for m in ran["model"]],
        "dataset": [_tt(d) if not d.startswith("(") else d for d in ran["dataset"]],
        "$n$": [fmt(v, 0) for v in ran["knn_n"]],
        "ICL random": [fmt(v, 3) for v in ran["random_acc"]],
        "ICL kNN": [fmt(v, 3) for v in ran["knn_acc"]],
        "kNN $-$ random": [fmt_ci(*v) for v in ran[["knn_diff", "knn_diff_lo", "knn_diff_hi"]].to_numpy()],
        "$p$": [fmt_p(v) for v in ran["knn_p"]],
        "head random": [fmt(v, 3) for v in ran["random_head_agreement"]],
        "head kNN": [fmt(v, 3) for v in ran["knn_head_agreement"]],
        "symbols": [f"\\texttt{{{tex_symbol(s)}}}" if isinstance(s, str) and s else "--" for s in ran["symbols"]],
        "ICL words": [fmt(v, 3) if pd.notna(s) else "--" for v, s in zip(ran["icl_acc"], ran["sym_icl_acc"])],
        "ICL symbols": [fmt(v, 3) for v in ran["sym_icl_acc"]],
        "symbols $-$ words": [fmt_ci(*v) for v in ran[["sym_diff", "sym_diff_lo", "sym_diff_hi"]].to_numpy()],
        "$p$ ": [fmt_p(v) for v in ran["sym_p"]],
        "word head": [fmt(v, 3) for v in ran["word_head_sym_eval_agreement"]],
        "symbol head": [
            f"{int(lay)}.{int(h)}: {fmt(v, 3)}" if pd.notna(v) else "--"
            for lay, h, v in zip(ran["sym_best_layer"].fillna(-1), ran["sym_best_head"].fillna(-1),
                                 ran["sym_eval_agreement"])
        ],
    })
    phenomena = booktabs_table(
        phen,
        caption=(
            "The phenomena kernel regression explains (Han et al.), on \\texttt{kernel.extras\\_datasets}. "
            "Left: ICL accuracy on the $n$ held-out queries with random demonstrations (those of "
            "Table~\\ref{tab:kernel}) and with each query's $k$ most similar training rows (all-MiniLM-L6-v2 "
            "cosine, most similar last), the paired difference with a bootstrap 95\\% CI and McNemar's $p$, and "
            "the best head's agreement with ICL under both. Right: the same demonstrations and queries with the "
            "label words replaced by meaningless symbols (one per class): ICL accuracy over all queries under "
            "words and symbols, the paired difference, McNemar's $p$, the held-out agreement under symbols of the "
            "head selected under words, and of the head selected afresh under symbols (layer.head: agreement). "
            "Rules: \\texttt{kernel\\_regression}, \\texttt{kernel\\_paper\\_numbers}."
        ),
        label="tab:kernel_phenomena",
        align="llrrrrrrrcrrrrrr",
        escape=False,
    )
    return main + "\n" + phenomena


def kernel_summary(summary: pd.DataFrame) -> str:
    """Generated sentences per (model, dataset): best head, baselines, and the phenomena where run."""
    sentences = []
    rows = summary.sort_values(["model", "dataset"])
    for r in rows.to_dict("records"):
        sentences.append(
            f"For \\texttt{{{latex_escape(r['model'])}}} on \\texttt{{{latex_escape(r['dataset'])}}}, head "
            f"{int(r['best_layer'])}.{int(r['best_head'])} reproduces the ICL prediction on {fmt(r['eval_agreement'], 3)} "
            f"of the {int(r['n_eval'])} held-out queries (95\\% CI {fmt(r['eval_agreement_lo'], 2)}--"
            f"{fmt(r['eval_agreement_hi'], 2)}; a constant vote agrees on {fmt(r['eval_const_agreement'], 3)}, "
            f"binomial {p_math(r['eval_agreement_p'])}) and is correct on {fmt(r['eval_accuracy'], 3)}, against ICL "
            f"accuracy {fmt(r['icl_eval_acc'], 3)} and kernel regression accuracy {fmt(r['minilm_kr_eval_acc'], 3)} "
            f"(MiniLM) and {fmt(r['hidden_kr_eval_acc'], 3)} (hidden states); its last-token attention puts "
            f"{fmt(r['best_head_label_mass'], 3)} of its mass on label tokens and {fmt(r['best_head_input_mass'], 3)} "
            "on demonstration inputs."
        )
        if pd.notna(r.get("knn_acc")):
            sentences.append(
                f"With each held-out query's nearest training rows as demonstrations ICL accuracy is "
                f"{fmt(r['knn_acc'], 3)} against {fmt(r['random_acc'], 3)} with random ones (difference "
                f"{fmt_ci(r['knn_diff'], r['knn_diff_lo'], r['knn_diff_hi'])}, McNemar {p_math(r['knn_p'])}), "
                f"and the head's agreement with ICL is {fmt(r['knn_head_agreement'], 3)} against "
                f"{fmt(r['random_head_agreement'], 3)}."
            )
        if pd.notna(r.get("sym_icl_acc")):
            sentences.append(
                f"With the symbols \\texttt{{{tex_symbol(r['symbols'])}}} in place of the label words ICL accuracy is "
                f"{fmt(r['sym_icl_acc'], 3)} against {fmt(r['icl_acc'], 3)} on all {int(r['n_queries'])} queries "
                f"(difference {fmt_ci(r['sym_diff'], r['sym_diff_lo'], r['sym_diff_hi'])}, McNemar "
                f"{p_math(r['sym_p'])}); the word-selected head agrees with it on "
                f"{fmt(r['word_head_sym_eval_agreement'], 3)} of the held-out queries, the best head under symbols "
                f"({int(r['sym_best_layer'])}.{int(r['sym_best_head'])}) on {fmt(r['sym_eval_agreement'], 3)}."
            )
    beats = int((rows["eval_accuracy"] > rows["minilm_kr_eval_acc"]).sum())
    sig = int((rows["eval_agreement_p"] < 0.05).sum())
    sentences.append(f"The best head's reconstruction is more accurate than MiniLM kernel regression in {beats} of "
                     f"{len(rows)} model--dataset runs, and its held-out agreement beats the constant vote at "
                     f"$p < 0.05$ in {sig} of {len(rows)}.")
    return "% Generated by rule kernel_paper_numbers.\n" + "\n".join(sentences) + "\n"


def kernel_macros(summary: pd.DataFrame, cfg: dict[str, Any]) -> dict[str, str]:
    """Stage-level settings plus per-run numbers (Kernel<Model><Dataset><Quantity>)."""
    cfg = settings(cfg)
    out = {
        "KernelNDemos": str(int(cfg["n_demos"])),
        "KernelNPromptSets": str(int(cfg["n_prompt_sets"])),
        "KernelSelectPercent": fmt(100 * float(cfg["select_fraction"]), 0),
        "KernelLambda": f"{float(cfg['ridge_lambda']):g}",
        "KernelNRuns": str(len(summary)),
        "KernelNTrainQueries": str(int(cfg["n_train_queries"])),
        "KernelKnnPool": str(int(cfg["knn_pool"])),
        "KernelSymbols": ", ".join(f"\\texttt{{{tex_symbol(s)}}}" for s in cfg["symbols"]) or "--",
        "KernelExtrasDatasets": ", ".join(_tt(d) for d in cfg["extras_datasets"]) or "every dataset",
        "KernelNQueriesMin": str(int(summary["n_queries"].min())) if len(summary) else "--",
        "KernelNEvalMin": str(int(summary["n_eval"].min())) if len(summary) else "--",
    }
    for r in summary.to_dict("records"):
        base = ("kernel", r["model"], r["dataset"])
        out[macro_name(*base, "best head")] = f"{int(r['best_layer'])}.{int(r['best_head'])}"
        for key in ("icl_eval_acc", "eval_agreement", "eval_accuracy", "minilm_kr_eval_acc", "hidden_kr_eval_acc",
                    "eval_const_agreement", "knn_acc", "random_acc", "sym_icl_acc", "icl_acc"):
            out[macro_name(*base, key)] = fmt(r[key], 3)
        out[macro_name(*base, "n eval")] = str(int(r["n_eval"]))
        out[macro_name(*base, "eval agreement p")] = fmt_p(r["eval_agreement_p"])
        for key in ("knn_p", "sym_p"):
            out[macro_name(*base, key)] = fmt_p(r[key])
    return out
