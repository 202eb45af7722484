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
Settings come from the validated `kernel` config block (config/schema.yaml).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from iclgd.core import forward, prompts
from iclgd.kernel_regression.attention import capture
from iclgd.kernel_regression.embeddings import kernel_regression, knn_demos, load_sentence_encoder
from iclgd.kernel_regression.heads import (
    HeadSelection, prediction_similarity, reconstruct, select_heads, similarity_correlation, split_indices,
)
from iclgd.kernel_regression.probes import collect_kv
from iclgd.kernel_regression.prompt_sets import (
    check_label_symbols, draw_train_queries, relabel_prompt_set, rows_prompt_set,
)
from iclgd.kernel_regression.spans import KernelError, demo_inputs, label_tokens_in_prompt
from iclgd.kernel_regression.summaries import (
    accuracy, eval_agreement_stats, head_eval, head_table, mean_profile, paired_test, probe_table,
)

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


def raw_text(row: dict[str, Any], fields: list[str]) -> str:
    """The example's own text fields joined by newlines (what a sentence encoder should see)."""
    return "\n".join(str(row[f]) for f in fields)


def assign_sets(n_queries: int, n_sets: int) -> np.ndarray:
    """Query j uses demonstration set j mod n_sets."""
    return np.arange(n_queries) % max(1, n_sets)


def extras_on(cfg: dict[str, Any], dataset: str) -> bool:
    """Whether the costly extras (kNN, symbols) run on `dataset`: `extras_datasets` [] means all."""
    chosen = cfg["extras_datasets"]
    return not chosen or dataset in chosen


def capture_sets(model, tok, sets, queries, which) -> dict[str, np.ndarray]:
    """Capture every query with its demonstration set (query j -> sets[which[j]]), back in query order."""
    caps = {s: capture(model, tok, ps, [queries[j] for j in np.flatnonzero(which == s)])
            for s, ps in enumerate(sets) if np.any(which == s)}
    order = np.concatenate([np.flatnonzero(which == s) for s in caps])
    inv = np.argsort(order)
    out = {f: np.concatenate([getattr(c, f) for c in caps.values()])[inv]
           for f in ("a", "mass", "profile", "pred", "gold")}
    out["demo_labels"] = np.stack([caps[s].demo_labels for s in which])  # (Q, n)
    return out


@torch.inference_mode()
def zero_shot(model, tok, texts, label_ids, layer: int, batch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """P(o|x) over the label tokens and the `layer` hidden state at the last token of each text run
    alone, from one batched forward: (N, C) rows summing to 1, (N, hidden) float32.

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
    nearest = knn_demos(q_emb, pool_emb, k)
    preds, weights, labels = [], [], []
    for query, idx in zip(tqdm(queries, desc="knn", leave=False), nearest):
        ps = rows_prompt_set(spec, [rows[i] for i in idx[::-1]], [query], name)
        cap = capture(model, tok, ps, [query])
        preds.append(cap.pred[0])
        weights.append(cap.a[0])
        labels.append(cap.demo_labels)
    return {"pred": np.array(preds, dtype=np.int64), "a": np.stack(weights), "demo_labels": np.stack(labels)}


def knn_vs_random(model, tok, encoder, pool, spec, queries, q_emb, k: int, name: str, pred, gold, ev,
                  best: HeadSelection, n_classes: int, seed: int, boot: tuple[int, float]) -> dict[str, float]:
    """6a: ICL on the held-out queries with kNN-retrieved vs the random demonstrations, and the best
    head's agreement with ICL under both."""
    knn_cap = knn_capture(model, tok, encoder, pool, spec, [queries[j] for j in ev], q_emb[ev], k, name)
    knn_correct, rand_correct = knn_cap["pred"] == gold[ev], pred[ev] == gold[ev]
    k_agree, k_acc = head_eval(knn_cap["a"], knn_cap["demo_labels"], knn_cap["pred"], gold[ev], n_classes,
                               best.layer, best.head)
    return {"knn_n": len(ev), "knn_acc": float(knn_correct.mean()), "random_acc": float(rand_correct.mean()),
            **paired_test(knn_correct, rand_correct, seed, "knn", *boot),
            "knn_head_agreement": k_agree, "knn_head_accuracy": k_acc,
            "random_head_agreement": best.eval_agreement, "random_head_accuracy": best.eval_accuracy}


def symbols_vs_words(model, tok, sets, queries, which, symbols: list[str], pred, gold, ev, best: HeadSelection,
                     n_classes: int, select_fraction: float, seed: int, boot: tuple[int, float]) -> dict[str, Any]:
    """6b: the same demonstrations and queries with the label words replaced by `symbols`: ICL accuracy,
    the word-selected head's held-out agreement, and a head selected afresh under symbols."""
    C = n_classes
    check_label_symbols(tok, symbols, C)
    sym_sets = [relabel_prompt_set(ps, symbols[:C]) for ps in sets]
    for ps in sym_sets:
        if not label_tokens_in_prompt(tok, ps):
            raise KernelError(f"kernel.symbols {symbols[:C]}: a symbol merges with its neighbours in "
                              "the prompt, so the demonstrations do not show the scored token")
    sc = capture_sets(model, tok, sym_sets, queries, which)
    sym_best = select_heads(sc["a"], sc["demo_labels"], sc["pred"], gold, C, select_fraction, seed)
    w_agree, w_acc = head_eval(sc["a"][ev], sc["demo_labels"][ev], sc["pred"][ev], gold[ev], C, best.layer,
                               best.head)
    return {"symbols": " ".join(symbols[:C]), "sym_icl_acc": accuracy(sc["pred"], gold),
            **paired_test(sc["pred"] == gold, pred == gold, seed, "sym", *boot),
            "sym_icl_eval_acc": sym_best.icl_eval_accuracy, "sym_best_layer": sym_best.layer,
            "sym_best_head": sym_best.head, "sym_eval_agreement": sym_best.eval_agreement,
            "sym_eval_accuracy": sym_best.eval_accuracy,
            "word_head_sym_eval_agreement": w_agree, "word_head_sym_eval_accuracy": w_acc}


def run_kernel(model, tok, train: pd.DataFrame, test: pd.DataFrame, spec: dict[str, Any], cfg: dict[str, Any],
               metrics: dict[str, Any], model_name: str) -> dict[str, pd.DataFrame]:
    """Analyses 1-6 on one model x dataset; returns {summary, heads, profile, probes} frames (compact).

    cfg: the validated `kernel` config block; metrics: the `metrics` block (bootstrap size and level)."""
    name = spec["name"]
    seed = int(cfg["seed"])
    boot = (int(metrics["n_boot"]), float(metrics["ci"]))
    if cfg["n_queries"] is not None:
        test = test.iloc[: int(cfg["n_queries"])]
    n_sets, k = int(cfg["n_prompt_sets"]), int(cfg["n_demos"])
    extras = extras_on(cfg, name)
    do_knn, symbols = extras and bool(cfg["knn"]), list(cfg["symbols"]) if extras else []
    seeds = range(seed, seed + n_sets)
    sets = prompts.build_prompt_sets(name, spec, train, test.iloc[:0], [k], seeds)
    used = {d["uid"] for ps in sets for d in ps["demos"]}
    extra, pool = draw_train_queries(train, used, int(cfg["n_train_queries"]),
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
    sel, ev = split_indices(len(queries), cfg["select_fraction"], seed)
    best = select_heads(a, demo_labels, pred, gold, C, cfg["select_fraction"], seed)
    rec = reconstruct(a[ev, best.layer, best.head], demo_labels[ev], C)
    held = eval_agreement_stats(rec == pred[ev], pred[ev], pred[sel], seed, *boot)
    log.info("%s/%s: best head %d.%d, eval agreement %.3f [%.3f, %.3f] (constant %.3f, p %.3g), accuracy %.3f "
             "(ICL %.3f)", model_name, name, best.layer, best.head, best.eval_agreement, held["eval_agreement_lo"],
             held["eval_agreement_hi"], held["eval_const_agreement"], held["eval_agreement_p"], best.eval_accuracy,
             best.icl_eval_accuracy)

    # 3: prediction similarity
    query_texts = [q["query"] for q in queries]
    demo_texts = [demo_inputs(ps) for ps in sets]
    label_ids = forward.label_token_ids(tok, sets[0]["label_words"])
    layer = int(cfg["hidden_layer"])
    p_query, q_hid = zero_shot(model, tok, query_texts, label_ids, layer)
    p_demos, d_hid = zip(*[zero_shot(model, tok, t, label_ids, layer) for t in demo_texts])
    sim = np.stack([prediction_similarity(p_query[j], p_demos[s]) for j, s in enumerate(which)])  # (Q, n)
    sim_r = similarity_correlation(a, sim)
    heads = head_table(a, demo_labels, pred, gold, C, sel, ev, mass, sim_r)

    # 4: ridge probes at the best head's layer
    offsets = [int(o) for o in cfg["probe_offsets"]]
    kv = [collect_kv(model, tok, ps, best.layer, offsets) for ps in sets]
    keys = np.concatenate([x["keys"] for x in kv])
    values = np.concatenate([x["values"] for x in kv])
    key_target = np.concatenate([p.argmax(axis=1) for p in p_demos])
    value_target = np.concatenate([[classes.index(d["label"]) for d in ps["demos"]] for ps in sets])
    probes = probe_table(keys, values, key_target, value_target, offsets, cfg["ridge_lambda"], seed)
    group = len(heads["head"].unique()) // keys.shape[2]  # query heads per kv head (GQA)
    kv_best = best.head // max(1, group)
    at0 = probes[(probes["offset"] == 0) & (probes["kv_head"] == kv_best)].set_index("target")["test_accuracy"]

    # 5: kernel-regression baselines
    encoder = load_sentence_encoder(str(model.device))
    by_uid_train = {int(r["uid"]): r for r in train.to_dict("records")}
    q_raw = [raw_text(r, fields) for r in qrows.to_dict("records")]
    d_raw = [[raw_text(by_uid_train[d["uid"]], fields) for d in ps["demos"]] for ps in sets]
    q_emb = encoder.encode(q_raw)
    d_emb = [encoder.encode(t) for t in d_raw]
    minilm_pred, _ = kernel_regression(q_emb, np.stack([d_emb[s] for s in which]), demo_labels, C)
    hidden_pred, _ = kernel_regression(q_hid, np.stack([d_hid[s] for s in which]), demo_labels, C)

    # 6a: kNN-retrieved vs random demonstrations, on the held-out queries
    nan = float("nan")
    knn = {c: nan for c in SUMMARY_COLUMNS if c.startswith(("knn_", "random_"))}
    if do_knn:
        knn.update(knn_vs_random(model, tok, encoder, pool, spec, queries, q_emb, k, name, pred, gold, ev, best, C,
                                 seed, boot))
        log.info("%s/%s: kNN demos ICL acc %.3f vs random %.3f on %d held-out queries (p %.3g); head %d.%d "
                 "agreement %.3f vs %.3f", model_name, name, knn["knn_acc"], knn["random_acc"], len(ev), knn["knn_p"],
                 best.layer, best.head, knn["knn_head_agreement"], best.eval_agreement)

    # 6b: label words vs meaningless symbols, same demonstrations and queries
    sym = {c: nan for c in SUMMARY_COLUMNS if c.startswith(("sym_", "word_head_sym_"))}
    sym["symbols"] = ""
    if symbols:
        sym.update(symbols_vs_words(model, tok, sets, queries, which, symbols, pred, gold, ev, best, C,
                                    cfg["select_fraction"], seed, boot))
        log.info("%s/%s: symbols %s ICL acc %.3f vs words %.3f (p %.3g); best head %d.%d agreement %.3f; word head "
                 "%d.%d agreement %.3f", model_name, name, sym["symbols"], sym["sym_icl_acc"], accuracy(pred, gold),
                 sym["sym_p"], sym["sym_best_layer"], sym["sym_best_head"], sym["sym_eval_agreement"], best.layer,
                 best.head, sym["word_head_sym_eval_agreement"])

    best_row = heads[(heads["layer"] == best.layer) & (heads["head"] == best.head)].iloc[0]
    summary = pd.DataFrame([{
        "model": model_name, "dataset": name, "n_queries": len(queries), "n_select": len(sel), "n_eval": len(ev),
        "n_demos": k, "n_prompt_sets": n_sets, "n_layers": a.shape[1], "n_heads": a.shape[2],
        "icl_acc": accuracy(pred, gold), "icl_eval_acc": best.icl_eval_accuracy,
        "best_layer": best.layer, "best_head": best.head, "select_agreement": best.select_agreement,
        "eval_agreement": best.eval_agreement, "eval_accuracy": best.eval_accuracy,
        "best_head_label_mass": best_row["mass_label"], "best_head_input_mass": best_row["mass_input"],
        "best_head_sim_r": best_row["sim_r"],
        "minilm_kr_acc": accuracy(minilm_pred, gold), "minilm_kr_eval_acc": accuracy(minilm_pred, gold, ev),
        "minilm_kr_eval_agreement": accuracy(minilm_pred, pred, ev),
        "hidden_kr_acc": accuracy(hidden_pred, gold), "hidden_kr_eval_acc": accuracy(hidden_pred, gold, ev),
        "hidden_kr_eval_agreement": accuracy(hidden_pred, pred, ev),
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
