"""The analyses one kernel run is made of (iclgd.kernel.analyses): the zero-shot forward against a plain
transformers forward per text, the captures of several demonstration sets put back in query order, and the
text a sentence encoder sees."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from iclgd.core import forward
from iclgd.kernel.analyses import capture_sets, raw_text, zero_shot
from iclgd.kernel.attention import capture
from iclgd.kernel.spans import demo_inputs

torch.set_num_threads(1)


@torch.no_grad()
def reference_zero_shot(model, tok, texts, label_ids, layer) -> tuple[np.ndarray, np.ndarray]:
    """Each text alone through a plain transformers forward (no padding, no head hook): P(o|x) over the
    label tokens and the `layer` hidden state at the last token."""
    probs, hidden = [], []
    for text in texts:
        out = model(input_ids=torch.tensor([forward.encode_prefix(tok, text)]), output_hidden_states=True)
        logp = torch.log_softmax(out.logits[0, -1], dim=-1)[label_ids]
        probs.append(torch.softmax(logp, dim=-1).numpy())
        hidden.append(out.hidden_states[layer][0, -1].numpy())
    return np.stack(probs), np.stack(hidden)


@pytest.mark.parametrize("layer", [-1, 1])
def test_zero_shot_matches_a_plain_forward_per_text(tiny, make_prompt_set, layer):
    model, tok = tiny
    ps = make_prompt_set(k=3)
    texts = demo_inputs(ps) + ["Review: dull, flat and long\nSentiment:", "x"]
    assert all(t.endswith("Sentiment:") for t in texts[:3])
    label_ids = forward.label_token_ids(tok, ps["label_words"])
    p, hid = zero_shot(model, tok, texts, label_ids, layer, batch_size=2)  # padded batches of unequal lengths
    assert p.shape == (5, 3) and hid.shape == (5, model.config.hidden_size) and hid.dtype == np.float32
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-6)
    ref_p, ref_hid = reference_zero_shot(model, tok, texts, label_ids, layer)
    np.testing.assert_allclose(p, ref_p, atol=1e-5)
    np.testing.assert_allclose(hid, ref_hid, atol=1e-4)


def test_capture_sets_give_each_query_its_own_sets_capture_in_query_order(tiny, make_prompt_set):
    model, tok = tiny
    sets = [make_prompt_set(k=3, seed=0), make_prompt_set(k=3, seed=1)]
    queries = sets[0]["queries"]
    set_of_query = np.array([1, 0, 1])
    got = capture_sets(model, tok, sets, queries, set_of_query)
    for j, set_id in enumerate(set_of_query):
        alone = capture(model, tok, sets[set_id], [queries[j]])
        for field in ("a", "mass", "profile"):
            np.testing.assert_allclose(got[field][j], getattr(alone, field)[0], atol=1e-5, err_msg=field)
        assert got["pred"][j] == alone.pred[0] and got["gold"][j] == alone.gold[0]
        np.testing.assert_array_equal(got["demo_labels"][j], alone.demo_labels)


def test_raw_text_joins_the_examples_own_fields_by_newlines():
    row = {"premise": "It rained.", "hypothesis": "It was wet.", "label": "entailment", "uid": 3}
    assert raw_text(row, ["premise", "hypothesis"]) == "It rained.\nIt was wet."
    assert raw_text({"text": 12}, ["text"]) == "12"
