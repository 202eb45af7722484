"""The shape run's memory side (iclgd.tools.shape_memory): the run's peak RSS (a phase drawn in a child process
counts its child's), and the GPU budget beside the activation bytes the probe measured and the formula's, by
hand. The untrained draw in its own process runs in test_shape_run.py's tiny run."""

from __future__ import annotations

import pytest
from transformers import LlamaConfig

from iclgd.core import memory
from iclgd.tools import shape_memory


def test_peak_rss_takes_a_child_processs_peak_where_a_phase_drew_in_one():
    phases = {"write": {"peak_rss_gb": 1.0}, "score": {"peak_rss_gb": 2.5},
              "untrained": {"peak_rss_gb": 9.0, "child_peak_rss_gb": 3.0}}  # 9 GB: this process's, not the draw's
    assert shape_memory.peak_rss_gb(phases) == 3.0
    phases["score"]["peak_rss_gb"] = 4.0
    assert shape_memory.peak_rss_gb(phases) == 4.0


@pytest.mark.parametrize("dtype,size", [("float32", 4), ("bfloat16", 2)])
def test_memory_budget_sets_the_measured_activation_bytes_beside_the_formula(dtype, size):
    config = LlamaConfig(vocab_size=1000, hidden_size=64, intermediate_size=172, num_hidden_layers=2,
                         num_attention_heads=4)
    train = {"weight_dtype": f"torch.{dtype}", "saved_activation_bytes_all": 12345, "padded_tokens": 10, "layers": 2}
    budget = shape_memory.memory_budget(config, train, batch_tokens=128)
    act = budget.pop("activation_bytes_per_token_per_layer")
    # per token and layer: 8 hidden + 4 intermediate values in the weights' dtype, plus 8 bytes per hidden unit
    assert act == {"measured": round(12345 / (10 * 2)), "formula": (8 * 64 + 4 * 172) * size + 8 * 64, "dtype": dtype}
    assert budget == memory.gpu_budget(config, 128)
