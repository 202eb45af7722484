"""The kernel-regression stage (Han et al. 2023): run the analyses on one model x dataset, then the
figure, Table-2-style table, generated sentences and macros.

`run_kernel` does, on the pipeline's test split with `n_demos` demonstrations:

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
6. optionally (`knn`), ICL accuracy with kNN-retrieved (MiniLM) rather than random demonstrations.

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

from iclgd import kernel, prompts, scoring
from iclgd.figures import save
from iclgd.paper import booktabs_table, fmt, latex_escape, macro_name

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
}

SUMMARY_COLUMNS = [
    "model", "dataset", "n_queries", "n_select", "n_eval", "n_demos", "n_prompt_sets", "n_layers", "n_heads",
    "icl_acc", "icl_eval_acc", "best_layer", "best_head", "select_agreement", "eval_agreement", "eval_accuracy",
    "best_head_label_mass", "best_head_input_mass", "best_head_sim_r",
    "minilm_kr_acc", "minilm_kr_eval_acc", "minilm_kr_eval_agreement",
    "hidden_kr_acc", "hidden_kr_eval_acc", "hidden_kr_eval_agreement",
    "probe_key_acc", "probe_value_acc", "knn_acc", "random_acc",
]


def settings(cfg: dict[str, Any] | None) -> dict[str, Any]:
    """The config block over DEFAULTS (pipeline-level keys dropped)."""
    cfg = {k: v for k, v in (cfg or {}).items() if k not in ("models", "datasets")}
    unknown = set(cfg) - set(DEFAULTS)
    if unknown:
        raise kernel.KernelError(f"unknown kernel settings {sorted(unknown)}")
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


def run_kernel(model, tok, train: pd.DataFrame, test: pd.DataFrame, spec: dict[str, Any], cfg: dict[str, Any],
               model_name: str) -> dict[str, pd.DataFrame]:
    """Analyses 1-6 on one model x dataset; returns {summary, heads, profile, probes} frames (compact)."""
    cfg = settings(cfg)
    name = spec["name"]
    if cfg["n_test"] is not None:
        test = test.iloc[: int(cfg["n_test"])]
    n_sets, k = int(cfg["n_prompt_sets"]), int(cfg["n_demos"])
    seeds = range(int(cfg["seed"]), int(cfg["seed"]) + n_sets)
    sets = prompts.build_prompt_sets(name, spec, train, test, [k], seeds)
    classes, fields = list(spec["classes"]), list(spec["fields"])
    C = len(classes)
    queries = sets[0]["queries"]
    which = assign_sets(len(queries), n_sets)
    order = np.concatenate([np.flatnonzero(which == s) for s in range(n_sets)])  # capture order -> query index

    # 1-2: capture per demonstration set, back in query order
    caps = [kernel.capture(model, tok, ps, [queries[j] for j in np.flatnonzero(which == s)])
            for s, ps in enumerate(sets)]
    inv = np.argsort(order)
    cat = lambda field: np.concatenate([getattr(c, field) for c in caps])[inv]  # noqa: E731
    a, mass, profile, pred, gold = cat("a"), cat("mass"), cat("profile"), cat("pred"), cat("gold")
    demo_labels = np.stack([caps[s].demo_labels for s in which])  # (Q, n)
    sel, ev = kernel.split_indices(len(queries), cfg["select_fraction"], cfg["seed"])
    best = kernel.select_heads(a, demo_labels, pred, gold, C, cfg["select_fraction"], cfg["seed"])
    log.info("%s/%s: best head %d.%d, eval agreement %.3f, accuracy %.3f (ICL %.3f)", model_name, name,
             best.layer, best.head, best.eval_agreement, best.eval_accuracy, best.icl_eval_accuracy)

    # 3: prediction similarity
    query_texts = [q["query"] for q in queries]
    demo_texts = [kernel.demo_inputs(ps) for ps in sets]
    label_ids = scoring.label_token_ids(tok, sets[0]["label_words"])
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
    value_target = np.concatenate([c.demo_labels for c in caps])
    probes = probe_table(keys, values, key_target, value_target, offsets, cfg["ridge_lambda"], cfg["seed"])
    group = len(heads["head"].unique()) // keys.shape[2]  # query heads per kv head (GQA)
    kv_best = best.head // max(1, group)
    at0 = probes[(probes["offset"] == 0) & (probes["kv_head"] == kv_best)].set_index("target")["test_accuracy"]

    # 5: kernel-regression baselines
    encoder = kernel.load_sentence_encoder(str(model.device))
    by_uid_train = {int(r["uid"]): r for r in train.to_dict("records")}
    q_raw = [raw_text(r, fields) for r in test.to_dict("records")]
    d_raw = [[raw_text(by_uid_train[d["uid"]], fields) for d in ps["demos"]] for ps in sets]
    q_emb = encoder.encode(q_raw)
    d_emb = [encoder.encode(t) for t in d_raw]
    minilm_pred, _ = kernel.kernel_regression(q_emb, np.stack([d_emb[s] for s in which]), demo_labels, C)
    hidden_pred, _ = kernel.kernel_regression(q_hid, np.stack([d_hid[s] for s in which]), demo_labels, C)

    # 6: kNN-retrieved demonstrations (optional)
    knn_acc = random_acc = float("nan")
    if cfg["knn"]:
        knn_pred = knn_predictions(model, tok, encoder, train, spec, queries, q_emb, k, cfg)
        knn_acc, random_acc = _acc(knn_pred, gold), _acc(pred, gold)

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
        "knn_acc": knn_acc, "random_acc": random_acc,
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
    compute separately): (N, C) rows summing to 1, (N, hidden) float32."""
    ids = [scoring.encode_prefix(tok, t) for t in texts]
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    probs, hidden = [], []
    for start in range(0, len(ids), batch_size):
        batch = ids[start : start + batch_size]
        width = max(len(x) for x in batch)
        inp = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, x in enumerate(batch):  # right padding: pads come after the last real token
            inp[row, : len(x)] = torch.tensor(x)
            mask[row, : len(x)] = 1
        last = torch.tensor([len(x) - 1 for x in batch])
        keep = torch.unique(last)  # logits only at the positions that are some row's last token
        out = model(input_ids=inp.to(model.device), attention_mask=mask.to(model.device), output_hidden_states=True,
                    logits_to_keep=keep.to(model.device))
        rows = torch.arange(len(batch), device=model.device)
        column = torch.searchsorted(keep, last).to(model.device)
        last = last.to(model.device)
        logp = torch.log_softmax(out.logits[rows, column].float(), dim=-1)[:, label_ids]
        probs.append(torch.softmax(logp, dim=-1).cpu().numpy())
        hidden.append(out.hidden_states[layer][rows, last].float().cpu().numpy())
    return np.concatenate(probs).astype(np.float32), np.concatenate(hidden).astype(np.float32)


def knn_predictions(model, tok, encoder, train, spec, queries, q_emb, k, cfg) -> np.ndarray:
    """ICL predictions with each query's k nearest training examples (MiniLM cosine) as demonstrations,
    most similar last (KATE), drawn from a seeded pool of `knn_pool` training rows."""
    rng = np.random.default_rng(int(cfg["seed"]))
    pool = train.iloc[np.sort(rng.permutation(len(train))[: min(int(cfg["knn_pool"]), len(train))])]
    rows = pool.to_dict("records")
    pool_emb = encoder.encode([raw_text(r, list(spec["fields"])) for r in rows])
    nearest = kernel.knn_demos(q_emb, pool_emb, k)
    label_ids = scoring.label_token_ids(tok, [spec["verbalizer"][c] for c in spec["classes"]])
    preds = []
    for query, idx in zip(queries, nearest):
        demos = [prompts.render_demo(spec["template"], spec["verbalizer"], rows[i]) for i in idx[::-1]]
        prefix = "".join(d + prompts.DEMO_SEPARATOR for d in demos)
        out = scoring.score_queries(model, tok, prefix, [query["query"]], label_ids, 1)
        preds.append(int(out["label_logprobs"][0].argmax()))
    return np.array(preds, dtype=np.int64)


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


def kernel_table_tex(summary: pd.DataFrame) -> str:
    """Table 2 layout: rows model / dataset, evaluation-part numbers (fractions)."""
    rows = summary.sort_values(["model", "dataset"])
    frame = pd.DataFrame({
        "model": [f"\\texttt{{{latex_escape(m)}}}" for m in rows["model"]],
        "dataset": [f"\\texttt{{{latex_escape(d)}}}" for d in rows["dataset"]],
        "ICL acc.": [fmt(v, 3) for v in rows["icl_eval_acc"]],
        "best head": [f"{int(lay)}.{int(h)}" for lay, h in zip(rows["best_layer"], rows["best_head"])],
        "agreement w.\\ ICL": [fmt(v, 3) for v in rows["eval_agreement"]],
        "rec.\\ acc.": [fmt(v, 3) for v in rows["eval_accuracy"]],
        "KR MiniLM": [fmt(v, 3) for v in rows["minilm_kr_eval_acc"]],
        "KR hidden": [fmt(v, 3) for v in rows["hidden_kr_eval_acc"]],
    })
    return booktabs_table(
        frame,
        caption=(
            "ICL as kernel regression (Table~2 layout of Han et al.). The best head (layer.head, from 0) is "
            "the one whose attention-weighted label vote agrees most with the ICL prediction on the selection "
            "part; all numbers are fractions on the disjoint evaluation part: ICL accuracy, the head's agreement "
            "with the ICL prediction and its accuracy, and kernel regression over the same demonstrations with "
            "all-MiniLM-L6-v2 embeddings and with the model's last hidden state (cosine kernel). "
            "Rules: \\texttt{kernel\\_regression}, \\texttt{kernel\\_paper\\_numbers}."
        ),
        label="tab:kernel",
        align="llrcrrrr",
        escape=False,
    )


def kernel_summary(summary: pd.DataFrame) -> str:
    """One generated sentence per (model, dataset), plus a count of runs where the head beats MiniLM KR."""
    sentences = []
    rows = summary.sort_values(["model", "dataset"])
    for r in rows.to_dict("records"):
        sentences.append(
            f"For \\texttt{{{latex_escape(r['model'])}}} on \\texttt{{{latex_escape(r['dataset'])}}}, head "
            f"{int(r['best_layer'])}.{int(r['best_head'])} reproduces the ICL prediction on {fmt(r['eval_agreement'], 3)} "
            f"of the {int(r['n_eval'])} held-out queries and is correct on {fmt(r['eval_accuracy'], 3)}, against ICL "
            f"accuracy {fmt(r['icl_eval_acc'], 3)} and kernel regression accuracy {fmt(r['minilm_kr_eval_acc'], 3)} "
            f"(MiniLM) and {fmt(r['hidden_kr_eval_acc'], 3)} (hidden states); its last-token attention puts "
            f"{fmt(r['best_head_label_mass'], 3)} of its mass on label tokens and {fmt(r['best_head_input_mass'], 3)} "
            "on demonstration inputs."
        )
    beats = int((rows["eval_accuracy"] > rows["minilm_kr_eval_acc"]).sum())
    sentences.append(f"The best head's reconstruction is more accurate than MiniLM kernel regression in {beats} of "
                     f"{len(rows)} model--dataset runs.")
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
    }
    for r in summary.to_dict("records"):
        base = ("kernel", r["model"], r["dataset"])
        out[macro_name(*base, "best head")] = f"{int(r['best_layer'])}.{int(r['best_head'])}"
        for key in ("icl_eval_acc", "eval_agreement", "eval_accuracy", "minilm_kr_eval_acc", "hidden_kr_eval_acc"):
            out[macro_name(*base, key)] = fmt(r[key], 3)
    return out
