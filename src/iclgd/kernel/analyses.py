"""The analyses `iclgd.kernel.run.run_kernel` runs on one model x dataset, one function each
(numbered as in run's docstring), on the demonstration sets and queries of a `RunInputs`.

1-2 `scan_heads`: attention per head captured per demonstration set, the best head picked on the
    selection part and scored on the evaluation part;
3   `score_heads`: every head's scores, with the Pearson r between its attention and the prediction
    similarity of the zero-shot runs (`zero_shot_runs`);
4   `probe_kv`: ridge probes of keys and values at the best head's layer;
5   `kernel_baselines`: kernel regression on MiniLM embeddings and on the model's hidden state;
6   `knn_vs_random` and `symbols_vs_words`: the phenomena the theory explains.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from iclgd.core import forward
from iclgd.kernel.attention import capture
from iclgd.kernel.embeddings import kernel_regression, knn_demos
from iclgd.kernel.heads import (
    HeadSelection, prediction_similarity, reconstruct, select_heads, similarity_correlation, split_indices,
)
from iclgd.kernel.probes import collect_kv
from iclgd.kernel.prompt_sets import check_label_symbols, relabel_prompt_set, rows_prompt_set
from iclgd.kernel.spans import KernelError, demo_inputs, label_tokens_in_prompt
from iclgd.kernel.summaries import (
    accuracy, eval_agreement_stats, head_eval, head_table, paired_test, probe_table,
)


@dataclass
class RunInputs:
    """What every analysis of one run reads: the model, the dataset spec, the demonstration sets, the
    queries (query j uses sets[set_of_query[j]]) and the settings that seed and size the analyses."""

    model: Any
    tokenizer: Any
    spec: dict[str, Any]
    sets: list[dict[str, Any]]
    query_rows: pd.DataFrame
    queries: list[dict[str, Any]]
    set_of_query: np.ndarray
    seed: int
    boot: tuple[int, float]
    select_fraction: float

    @property
    def n_classes(self) -> int:
        """How many classes the label votes choose among."""
        return len(self.spec["classes"])


@dataclass
class HeadScan:
    """Analyses 1-2: the captures in query order (`capture_sets`), the selection / evaluation split, the
    best head and its held-out agreement statistics (`eval_agreement_stats`)."""

    captured: dict[str, np.ndarray]
    select_idx: np.ndarray
    eval_idx: np.ndarray
    best: HeadSelection
    held: dict[str, Any]


@dataclass
class ZeroShotRuns:
    """Each query and each demonstration input run alone: P(o|x) over the label tokens and the hidden
    state at the configured layer; the demonstration ones per set."""

    query_probs: np.ndarray
    query_hidden: np.ndarray
    demo_probs: tuple[np.ndarray, ...]
    demo_hidden: tuple[np.ndarray, ...]


def raw_text(row: dict[str, Any], fields: list[str]) -> str:
    """The example's own text fields joined by newlines (what a sentence encoder should see)."""
    return "\n".join(str(row[field]) for field in fields)


def capture_sets(model, tokenizer, sets, queries, set_of_query: np.ndarray) -> dict[str, np.ndarray]:
    """Capture every query with its demonstration set (query j -> sets[set_of_query[j]]), back in query order."""
    captures = {set_id: capture(model, tokenizer, prompt_set,
                                [queries[query] for query in np.flatnonzero(set_of_query == set_id)])
                for set_id, prompt_set in enumerate(sets) if np.any(set_of_query == set_id)}
    captured_order = np.concatenate([np.flatnonzero(set_of_query == set_id) for set_id in captures])
    to_query_order = np.argsort(captured_order)
    out = {field: np.concatenate([getattr(cap, field) for cap in captures.values()])[to_query_order]
           for field in ("a", "mass", "profile", "pred", "gold")}
    out["demo_labels"] = np.stack([captures[set_id].demo_labels for set_id in set_of_query])  # (Q, n)
    return out


@torch.inference_mode()
def zero_shot(model, tokenizer, texts, label_ids, layer: int, batch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """P(o|x) over the label tokens and the `layer` hidden state at the last token of each text run
    alone, from one batched forward: (N, C) rows summing to 1, (N, hidden) float32.

    Texts are batched in length order (RTE's long premises padded to a batch's longest text cost
    3x the real tokens) and the output head sees only each row's last real token (`forward.head_at`)."""
    token_ids = [forward.encode_prefix(tokenizer, text) for text in texts]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    by_length = np.argsort([len(ids) for ids in token_ids], kind="stable")
    probs = np.zeros((len(token_ids), len(label_ids)), dtype=np.float32)
    hidden: np.ndarray | None = None
    for start in range(0, len(token_ids), batch_size):
        rows = by_length[start : start + batch_size]
        batch = [token_ids[row] for row in rows]
        last = torch.tensor([len(ids) - 1 for ids in batch], device=model.device)
        out = forward.forward_at(model, batch, pad_id=pad, hidden_states=True)
        label_logprobs = torch.log_softmax(out.logits[:, 0].float(), dim=-1)[:, label_ids]
        probs[rows] = torch.softmax(label_logprobs, dim=-1).cpu().numpy()
        states = out.hidden_states[layer][torch.arange(len(batch), device=model.device), last].float().cpu().numpy()
        if hidden is None:
            hidden = np.zeros((len(token_ids), states.shape[1]), dtype=np.float32)
        hidden[rows] = states
    return probs, hidden if hidden is not None else np.zeros((0, 0), dtype=np.float32)


def scan_heads(run: RunInputs) -> HeadScan:
    """1-2: capture every query with its set, pick the head whose label vote agrees most with ICL on the
    selection part, and test that agreement on the disjoint evaluation part."""
    captured = capture_sets(run.model, run.tokenizer, run.sets, run.queries, run.set_of_query)
    weights, pred, gold, demo_labels = (captured[field] for field in ("a", "pred", "gold", "demo_labels"))
    select_idx, eval_idx = split_indices(len(run.queries), run.select_fraction, run.seed)
    best = select_heads(weights, demo_labels, pred, gold, run.n_classes, run.select_fraction, run.seed)
    votes = reconstruct(weights[eval_idx, best.layer, best.head], demo_labels[eval_idx], run.n_classes)
    held = eval_agreement_stats(votes == pred[eval_idx], pred[eval_idx], pred[select_idx], run.seed, *run.boot)
    return HeadScan(captured, select_idx, eval_idx, best, held)


def zero_shot_runs(run: RunInputs, layer: int) -> ZeroShotRuns:
    """Every query and every set's demonstration inputs run alone (what 3 and 4 compare attention with)."""
    label_ids = forward.label_token_ids(run.tokenizer, run.sets[0]["label_words"])
    query_texts = [query["query"] for query in run.queries]
    query_probs, query_hidden = zero_shot(run.model, run.tokenizer, query_texts, label_ids, layer)
    demo_probs, demo_hidden = zip(*[zero_shot(run.model, run.tokenizer, demo_inputs(prompt_set), label_ids, layer)
                                    for prompt_set in run.sets])
    return ZeroShotRuns(query_probs, query_hidden, demo_probs, demo_hidden)


def score_heads(run: RunInputs, scan: HeadScan, zero: ZeroShotRuns) -> pd.DataFrame:
    """3: every head's scores (`head_table`), with the Pearson r between its attention weights and the
    prediction similarity sim(x, x_i) = P(o|x)ᵀP(o|x_i)."""
    captured = scan.captured
    similarity = np.stack([prediction_similarity(zero.query_probs[query], zero.demo_probs[set_id])
                           for query, set_id in enumerate(run.set_of_query)])  # (Q, n)
    sim_r = similarity_correlation(captured["a"], similarity)
    return head_table(captured["a"], captured["demo_labels"], captured["pred"], captured["gold"], run.n_classes,
                      scan.select_idx, scan.eval_idx, captured["mass"], sim_r)


def probe_kv(run: RunInputs, scan: HeadScan, zero: ZeroShotRuns, heads: pd.DataFrame, offsets: list[int],
             ridge_lambda) -> tuple[pd.DataFrame, pd.Series]:
    """4: ridge probes at the best head's layer (keys -> argmax P(o|x_i), values -> y_i); returns the probe
    table and, by target, the test accuracy of the best head's kv head at the label position."""
    classes = list(run.spec["classes"])
    collected = [collect_kv(run.model, run.tokenizer, prompt_set, scan.best.layer, offsets) for prompt_set in run.sets]
    keys = np.concatenate([per_set["keys"] for per_set in collected])
    values = np.concatenate([per_set["values"] for per_set in collected])
    key_target = np.concatenate([probs.argmax(axis=1) for probs in zero.demo_probs])
    value_target = np.concatenate([[classes.index(demo["label"]) for demo in prompt_set["demos"]]
                                   for prompt_set in run.sets])
    probes = probe_table(keys, values, key_target, value_target, offsets, ridge_lambda, run.seed)
    group = len(heads["head"].unique()) // keys.shape[2]  # query heads per kv head (GQA)
    kv_best = scan.best.head // max(1, group)
    at_label = probes[(probes["offset"] == 0) & (probes["kv_head"] == kv_best)].set_index("target")["test_accuracy"]
    return probes, at_label


def kernel_baselines(run: RunInputs, train: pd.DataFrame, encoder, scan: HeadScan, zero: ZeroShotRuns
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """5: kernel regression over each query's demonstrations on MiniLM embeddings and on the model's hidden
    state: (MiniLM predictions, hidden-state predictions, the query embeddings kNN retrieval reuses)."""
    fields = list(run.spec["fields"])
    by_uid_train = {int(row["uid"]): row for row in train.to_dict("records")}
    query_texts = [raw_text(row, fields) for row in run.query_rows.to_dict("records")]
    demo_texts = [[raw_text(by_uid_train[demo["uid"]], fields) for demo in prompt_set["demos"]]
                  for prompt_set in run.sets]
    query_emb = encoder.encode(query_texts)
    demo_emb = [encoder.encode(texts) for texts in demo_texts]
    demo_labels, which = scan.captured["demo_labels"], run.set_of_query
    minilm_pred, _ = kernel_regression(query_emb, np.stack([demo_emb[set_id] for set_id in which]), demo_labels,
                                       run.n_classes)
    hidden_pred, _ = kernel_regression(zero.query_hidden, np.stack([zero.demo_hidden[set_id] for set_id in which]),
                                       demo_labels, run.n_classes)
    return minilm_pred, hidden_pred, query_emb


def knn_capture(model, tokenizer, encoder, pool: pd.DataFrame, spec, queries, query_emb, n_demos: int,
                name: str = "") -> dict[str, np.ndarray]:
    """ICL with each query's n_demos nearest pool rows (MiniLM cosine) as demonstrations, most similar last
    (KATE): one full forward per query (no shared prefix). Returns pred, a (Q, L, H, n_demos) and
    demo_labels (Q, n_demos)."""
    rows = pool.to_dict("records")
    pool_emb = encoder.encode([raw_text(row, list(spec["fields"])) for row in rows])
    nearest = knn_demos(query_emb, pool_emb, n_demos)
    preds, weights, labels = [], [], []
    for query, neighbours in zip(tqdm(queries, desc="knn", leave=False), nearest):
        prompt_set = rows_prompt_set(spec, [rows[row] for row in neighbours[::-1]], [query], name)
        captured = capture(model, tokenizer, prompt_set, [query])
        preds.append(captured.pred[0])
        weights.append(captured.a[0])
        labels.append(captured.demo_labels)
    return {"pred": np.array(preds, dtype=np.int64), "a": np.stack(weights), "demo_labels": np.stack(labels)}


def knn_vs_random(run: RunInputs, scan: HeadScan, encoder, pool: pd.DataFrame, query_emb: np.ndarray,
                  n_demos: int) -> dict[str, float]:
    """6a: ICL on the held-out queries with kNN-retrieved vs the random demonstrations, and the best
    head's agreement with ICL under both."""
    eval_idx, best = scan.eval_idx, scan.best
    pred, gold = scan.captured["pred"], scan.captured["gold"]
    knn_cap = knn_capture(run.model, run.tokenizer, encoder, pool, run.spec, [run.queries[query] for query in eval_idx],
                          query_emb[eval_idx], n_demos, run.spec["name"])
    knn_correct, rand_correct = knn_cap["pred"] == gold[eval_idx], pred[eval_idx] == gold[eval_idx]
    knn_agree, knn_acc = head_eval(knn_cap["a"], knn_cap["demo_labels"], knn_cap["pred"], gold[eval_idx],
                                   run.n_classes, best.layer, best.head)
    return {"knn_n": len(eval_idx), "knn_acc": float(knn_correct.mean()), "random_acc": float(rand_correct.mean()),
            **paired_test(knn_correct, rand_correct, run.seed, "knn", *run.boot),
            "knn_head_agreement": knn_agree, "knn_head_accuracy": knn_acc,
            "random_head_agreement": best.eval_agreement, "random_head_accuracy": best.eval_accuracy}


def symbols_vs_words(run: RunInputs, scan: HeadScan, symbols: list[str]) -> dict[str, Any]:
    """6b: the same demonstrations and queries with the label words replaced by `symbols`: ICL accuracy,
    the word-selected head's held-out agreement, and a head selected afresh under symbols."""
    n_classes, eval_idx, best = run.n_classes, scan.eval_idx, scan.best
    pred, gold = scan.captured["pred"], scan.captured["gold"]
    check_label_symbols(run.tokenizer, symbols, n_classes)
    sym_sets = [relabel_prompt_set(prompt_set, symbols[:n_classes]) for prompt_set in run.sets]
    for prompt_set in sym_sets:
        if not label_tokens_in_prompt(run.tokenizer, prompt_set):
            raise KernelError(f"kernel.symbols {symbols[:n_classes]}: a symbol merges with its neighbours in "
                              "the prompt, so the demonstrations do not show the scored token")
    sym_cap = capture_sets(run.model, run.tokenizer, sym_sets, run.queries, run.set_of_query)
    sym_best = select_heads(sym_cap["a"], sym_cap["demo_labels"], sym_cap["pred"], gold, n_classes,
                            run.select_fraction, run.seed)
    word_agree, word_acc = head_eval(sym_cap["a"][eval_idx], sym_cap["demo_labels"][eval_idx],
                                     sym_cap["pred"][eval_idx], gold[eval_idx], n_classes, best.layer, best.head)
    return {"symbols": " ".join(symbols[:n_classes]), "sym_icl_acc": accuracy(sym_cap["pred"], gold),
            **paired_test(sym_cap["pred"] == gold, pred == gold, run.seed, "sym", *run.boot),
            "sym_icl_eval_acc": sym_best.icl_eval_accuracy, "sym_best_layer": sym_best.layer,
            "sym_best_head": sym_best.head, "sym_eval_agreement": sym_best.eval_agreement,
            "sym_eval_accuracy": sym_best.eval_accuracy,
            "word_head_sym_eval_agreement": word_agree, "word_head_sym_eval_accuracy": word_acc}
