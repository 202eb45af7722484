"""Analytic sparsity of the GD construction, and the threshold table on hand-built and tiny LLaMa weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from iclgd.construction.lsa import constructed_weights
from iclgd.construction.sparsity import constructed_sparsity, model_attention_sparsity, sparsity_table


@pytest.mark.parametrize("d", [1, 3, 16, 64])
def test_constructed_sparsity_matches_built_matrices(d):
    w0 = torch.rand(d, d, dtype=torch.float64) + 0.5  # dense, no accidental zeros
    built = constructed_weights(d, d, lr=0.3, n_ctx=7, w0=w0)
    table = constructed_sparsity(d).set_index("name")
    for name, mat in built.items():
        assert int(torch.count_nonzero(mat)) == table.loc[name, "nonzeros"]
        assert mat.numel() == table.loc[name, "numel"]
    zero_w0 = constructed_sparsity(d, w0_dense=False).set_index("name")
    assert zero_w0.loc["W_V", "nonzeros"] == int(torch.count_nonzero(constructed_weights(d, d, 0.3, 7)["W_V"]))


def test_constructed_sparsity_llama_size():
    table = constructed_sparsity(4096).set_index("name")
    assert table.loc["W_K", "nonzeros"] == table.loc["W_Q", "nonzeros"] == 4096
    assert table.loc["W_K", "numel"] == 8192**2
    assert table.loc["W_K", "sparsity"] > 0.9999
    assert table.loc["W_V", "nonzeros"] == 4096 * 4096 + 4096
    assert table.loc["W_V", "sparsity"] == pytest.approx(0.75, abs=1e-3)


def test_sparsity_table_hand_computed():
    w = np.array([[0.0, 5e-7, -5e-6], [2e-4, -0.5, 0.0], [3e-3, 1.0, -2e-2], [0.0, 0.0, 7.0]])  # 12 entries
    # |w| < t counts: zeros (4) + 5e-7 | 5e-6 | 2e-4 | 3e-3
    expected = {1e-6: 5, 1e-5: 6, 1e-4: 6, 1e-3: 7, 1e-2: 8}
    tensors = {"w": w, "t": torch.tensor(w, dtype=torch.float32)}
    df = sparsity_table(tensors, list(expected)).set_index(["name", "threshold"])
    assert len(df) == 2 * len(expected)
    for name in ("w", "t"):
        for thr, count in expected.items():
            assert df.loc[(name, thr), "fraction_below"] == pytest.approx(count / 12)
            assert df.loc[(name, thr), "n_exact_zero"] == 4
            assert df.loc[(name, thr), "numel"] == 12


def test_model_attention_sparsity_tiny_llama():
    torch.manual_seed(0)
    cfg = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                      num_key_value_heads=2, vocab_size=100)
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():
        model.model.layers[1].self_attn.k_proj.weight[:, :16] = 0.0
    thresholds = (1e-2, 1e-4)
    df = model_attention_sparsity(model, thresholds)
    assert len(df) == 2 * 3 * len(thresholds)
    assert set(df.layer) == {0, 1} and set(df.proj) == {"q_proj", "k_proj", "v_proj"}
    assert (df.numel == 32 * 32).all()
    zeroed = df[(df.layer == 1) & (df.proj == "k_proj")]
    assert (zeroed.n_exact_zero == 32 * 16).all() and (zeroed.fraction_below >= 0.5).all()
    assert (df[df.layer == 0].n_exact_zero == 0).all()
