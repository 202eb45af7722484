"""Dai et al.'s metrics: hand cases for SimAOU / SimAM and their baselines, the capture against an
independent eager computation (tiny Llama, and a tiny Gemma 3 with sliding-window layers and grouped-query
attention), and the stage's fine-tuning bookkeeping."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch

from iclgd.dai_metrics import dai
from iclgd.core import forward, prompts, training
from iclgd.kernel_regression import kernel

torch.set_num_threads(1)

SPEC = {
    "template": "Review: {text}\nSentiment:",
    "verbalizer": {"negative": "negative", "positive": "positive"},
    "classes": ["negative", "positive"],
}
WORDS = ["dull", "great", "flat", "lovely", "tedious", "superb", "boring", "moving"]


def frame(uids, offset: int) -> pd.DataFrame:
    return pd.DataFrame({
        "uid": uids,
        "label": ["positive" if i % 2 else "negative" for i in range(len(uids))],
        "text": [f"a {WORDS[(i + offset) % len(WORDS)]} film" for i in range(len(uids))],
    })


def prompt_sets(ks=(1, 3), seeds=(0,), n_test: int = 4) -> list[dict]:
    return prompts.build_prompt_sets("toy", SPEC, frame(list(range(100, 120)), 0),
                                     frame(list(range(900, 900 + n_test)), 3), list(ks), list(seeds))


# ---------------------------------------------------------------------------------------------
# metrics: hand cases


def test_cosine_hand_case_and_zero_vector_is_undefined():
    got = dai.cosine(np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]), np.array([[0.0, 2.0], [3.0, 3.0], [1.0, 0.0]]))
    np.testing.assert_allclose(got[:2], [0.0, 1.0])
    assert np.isnan(got[2])
    with pytest.raises(dai.DaiError):
        dai.cosine(np.ones(2), np.ones(3))


def test_simaou_hand_case_normalises_first():
    # ĥ_ZS = (1, 0); ĥ_ICL = (0, 1) (norm 2 before); ĥ_FT = (1, 1)/√2. Updates (-1, 1) and (1/√2 - 1, 1/√2):
    # the angle between them is 22.5°, so the cosine is cos(π/8), whatever the raw norms were.
    zs, icl, ft = np.array([[[3.0, 0.0]]]), np.array([[[0.0, 2.0]]]), np.array([[[5.0, 5.0]]])
    got = dai.simaou(icl, ft, zs)
    assert got.shape == (1, 1)
    np.testing.assert_allclose(got[0, 0], np.cos(np.pi / 8))
    np.testing.assert_allclose(dai.simaou(icl, icl * 7, zs), [[1.0]])  # same direction: 1
    assert np.isnan(dai.simaou(zs, ft, zs)[0, 0])  # ICL did not move: undefined


def test_random_simaou_uses_a_seeded_uniform_vector():
    zs, icl = np.array([[[1.0, 0.0, 0.0]]]), np.array([[[0.0, 1.0, 0.0]]])
    u = np.random.default_rng(3).random((1, 1, 3))
    update = np.array([-1.0, 1.0, 0.0])
    expected = update @ u[0, 0] / (np.linalg.norm(update) * np.linalg.norm(u[0, 0]))
    np.testing.assert_allclose(dai.random_simaou(icl, zs, 3), [[expected]])
    np.testing.assert_array_equal(dai.random_simaou(icl, zs, 3), dai.random_simaou(icl, zs, 3))
    # property: updates with no component along the all-ones direction are ~orthogonal to uniform noise
    rng = np.random.default_rng(0)
    zs, icl = rng.normal(size=(200, 1, 400)), rng.normal(size=(200, 1, 400))
    zs -= zs.mean(-1, keepdims=True)
    icl -= icl.mean(-1, keepdims=True)
    assert abs(np.nanmean(dai.random_simaou(icl, zs, 1))) < 0.02


def test_simam_hand_case_mean_over_heads_and_padding_invariant():
    a = np.array([[[[1.0, 0.0], [1.0, 1.0]]]])  # (Q=1, L=1, H=2, T=2)
    b = np.array([[[[0.0, 1.0], [2.0, 2.0]]]])
    np.testing.assert_allclose(dai.simam(a, b), [[0.5]])  # heads: 0 and 1
    np.testing.assert_allclose(dai.simam(dai.pad_scores(a, 5), dai.pad_scores(b, 5)), [[0.5]])
    b0 = b.copy()
    b0[..., 0, :] = 0.0  # head 0 undefined: skipped, not counted as 0
    np.testing.assert_allclose(dai.simam(a, b0), [[1.0]])


def test_layer_and_query_means_skip_nan():
    v = np.array([[0.2, np.nan, 0.4], [0.0, 0.5, np.nan]])
    np.testing.assert_allclose(dai.layer_mean(v), [0.3, 0.25])
    np.testing.assert_allclose(dai.per_layer(v), [0.1, 0.5, 0.4])


# ---------------------------------------------------------------------------------------------
# capture against an independent computation


def reference(model, ids: list[int], n_query: int) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """Per layer from one plain eager forward (no cache, no self_attn hook): the last token's attention
    output o_proj(A_last · V) and its attention weights over the last n_query positions, renormalised."""
    values: dict[int, torch.Tensor] = {}
    layers = dai.decoder_layers(model)
    hooks = [
        layer.self_attn.v_proj.register_forward_hook(lambda _m, _i, out, i=i: values.__setitem__(i, out.detach()))
        for i, layer in enumerate(layers)
    ]
    try:
        with kernel.eager_attention(model), torch.no_grad():
            out = model(input_ids=torch.tensor([ids]), output_attentions=True)
    finally:
        for h in hooks:
            h.remove()
    outs, weights = [], []
    for i, layer in enumerate(layers):
        attn = out.attentions[i][0, :, -1, :]  # (H, T)
        n_heads = attn.shape[0]
        v = values[i][0].view(len(ids), -1, layer.self_attn.head_dim)  # (T, KVH, d)
        v = v.repeat_interleave(n_heads // v.shape[1], dim=1)  # (T, H, d)
        mixed = torch.einsum("ht,thd->hd", attn, v).reshape(-1)
        outs.append(layer.self_attn.o_proj(mixed).detach().numpy())
        w = attn[:, -n_query:]
        weights.append((w / w.sum(-1, keepdim=True)).numpy())
    return np.stack(outs), np.stack(weights), out.logits[0, -1]


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def check_capture(model, tok, prefix: str, texts: list[str], label_ids: list[int]) -> dai.DaiCapture:
    before = model.config._attn_implementation
    cap = dai.capture(model, tok, prefix, texts, label_ids)
    assert model.config._attn_implementation == before  # restored
    L = len(dai.decoder_layers(model))
    H = model.config.num_attention_heads
    assert cap.outputs.shape == (len(texts), L, model.config.hidden_size)
    assert cap.scores.shape == (len(texts), L, H, int(cap.n_query.max()))
    for qi, text in enumerate(texts):
        ids = forward.encode_prefix(tok, prefix) + forward.encode_query(tok, text)
        n_q = int(cap.n_query[qi])
        assert n_q == len(forward.encode_query(tok, text)) and cap.n_tokens[qi] == len(ids)
        outs, weights, logits = reference(model, ids, n_q)
        np.testing.assert_allclose(cap.outputs[qi], outs, atol=2e-5)
        np.testing.assert_allclose(softmax(cap.scores[qi, ..., -n_q:]), weights, atol=2e-5)
        assert (cap.scores[qi, ..., : cap.scores.shape[-1] - n_q] == 0).all()  # left padding
        np.testing.assert_allclose(cap.label_logprobs[qi], torch.log_softmax(logits, -1)[label_ids].numpy(), atol=1e-4)
    return cap


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
def test_capture_matches_eager_forward_llama(tiny, impl):
    model, tok = copy.deepcopy(tiny[0]), tiny[1]
    model.set_attn_implementation(impl)
    ps = prompt_sets(ks=(3,))[0]
    texts = [q["query"] for q in ps["queries"]]
    label_ids = forward.label_token_ids(tok, ps["label_words"])
    cap = check_capture(model, tok, ps["prefix"], texts, label_ids)
    zs = check_capture(model, tok, "", texts, label_ids)
    assert not np.allclose(cap.outputs, zs.outputs)  # the demonstrations change the last token's attention


def tiny_gemma3(tok, window: int):
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(0)
    config = Gemma3TextConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=1, head_dim=8, query_pre_attn_scalar=8, sliding_window=window,
        layer_types=["sliding_attention", "full_attention", "sliding_attention"], max_position_embeddings=4096,
        pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
    )
    return Gemma3ForCausalLM(config).eval()


def test_capture_matches_eager_forward_gemma3_sliding_window_and_gqa(tiny):
    tok = tiny[1]
    model = tiny_gemma3(tok, window=16)
    ps = prompt_sets(ks=(3,))[0]
    texts = [q["query"] for q in ps["queries"]]
    assert max(len(forward.encode_query(tok, t)) for t in texts) < 16  # queries inside the window
    assert len(forward.encode_prefix(tok, ps["prefix"])) > 16  # the prefix reaches past it
    check_capture(model, tok, ps["prefix"], texts, forward.label_token_ids(tok, ps["label_words"]))


def test_recording_leaves_the_model_output_unchanged(tiny):
    model, tok = tiny
    ids = torch.tensor([forward.encode_query(tok, "Review: a fine film\nSentiment:")])
    with torch.no_grad():
        plain = model(input_ids=ids).logits
        with dai.recording_attention(model) as recorder:
            recorded = model(input_ids=ids).logits
    torch.testing.assert_close(recorded, plain)
    assert sorted(recorder.rows) == list(range(model.config.num_hidden_layers))


# ---------------------------------------------------------------------------------------------
# the stage


def test_config_rejects_unknown_keys_and_casts_numbers():
    cfg = dai.DaiConfig.from_dict({"models": [], "datasets": ["sst2"], "k": [1, 2], "lr": "1e-3", "n_queries": None})
    assert cfg.lr == 1e-3 and cfg.k == (1, 2) and cfg.n_queries is None
    with pytest.raises(dai.DaiError, match="unknown keys"):
        dai.DaiConfig.from_dict({"n_query": 4})
    with pytest.raises(dai.DaiError, match="dai.k"):
        dai.DaiConfig.from_dict({"k": [0, 1]})


def test_prompt_set_and_query_selection():
    sets = prompt_sets(ks=(0, 1, 3), seeds=(0, 1), n_test=6)
    cfg = dai.DaiConfig(k=(1, 3), seeds=(1,))
    chosen = dai.select_prompt_sets(sets, cfg)
    assert [(ps["k"], ps["seed"]) for ps in chosen] == [(1, 1), (3, 1)]
    with pytest.raises(dai.DaiError, match="k = \\[2\\]"):
        dai.select_prompt_sets(sets, dai.DaiConfig(k=(1, 2)))
    picked = dai.pick_queries(chosen, 4, seed=0)
    assert picked == dai.pick_queries(chosen, 4, seed=0) and len(picked) == 4
    uids = [q["uid"] for q in chosen[0]["queries"]]
    assert [q["uid"] for q in picked] == sorted([q["uid"] for q in picked], key=uids.index)  # file order
    assert dai.pick_queries(chosen, None, 0) == chosen[0]["queries"]
    other = {**chosen[1], "queries": chosen[1]["queries"][::-1]}
    with pytest.raises(dai.DaiError, match="other test queries"):
        dai.pick_queries([chosen[0], other], 2, 0)


def test_run_trains_kv_restores_weights_and_is_deterministic(tiny):
    model, tok = copy.deepcopy(tiny[0]), tiny[1]
    sets = prompt_sets(ks=(0, 1, 3), n_test=4)
    cfg = dai.DaiConfig(k=(1, 3), lr=0.05, n_queries=3)
    base = {n: p.detach().clone() for n, p in model.named_parameters()}
    arrays, correct, runs = dai.run(model, tok, sets, cfg, progress=False)
    for name, param in model.named_parameters():
        torch.testing.assert_close(param.detach(), base[name], rtol=0, atol=0)
        assert not param.requires_grad
    L, D = model.config.num_hidden_layers, model.config.hidden_size
    assert arrays["k"].tolist() == [1, 3] and arrays["zs_outputs"].shape == (3, L, D)
    assert arrays["icl_outputs"].shape == arrays["ft_outputs"].shape == (2, 3, L, D)
    assert runs["n_steps"].tolist() == [1, 3] and (runs["update_norm"] > 0).all()
    assert list(correct.columns[:4]) == ["k", "seed", "uid", "label_index"] and len(correct) == 6
    # fine-tuning moved the zero-shot attention outputs; ICL of the base model is not affected by it
    assert not np.allclose(arrays["ft_outputs"][0], arrays["zs_outputs"])
    metrics = dai.query_metrics(dai.capture_from(arrays, "zs"), dai.capture_from(arrays, "icl", 0),
                                dai.capture_from(arrays, "ft", 0), seed=0)
    assert all(v.shape == (3, L) for v in metrics.values())
    again, _, _ = dai.run(model, tok, sets, cfg, progress=False)
    for key in arrays:
        np.testing.assert_array_equal(arrays[key], again[key])
    # only k/v projections were trained: with lr 0 FT is the base model exactly
    zero, _, runs0 = dai.run(model, tok, sets, dai.DaiConfig(k=(1,), lr=1e-12, n_queries=3), progress=False)
    np.testing.assert_allclose(zero["ft_outputs"][0], zero["zs_outputs"], atol=1e-5)
    assert training.select_parameters(model, "kv")  # the subset the stage trains exists


# ---------------------------------------------------------------------------------------------
# report: tables from captures, summary levels, Rec2FTP edge cases, paper outputs


def synthetic_arrays(n_q: int = 3, n_layers: int = 2, dim: int = 4, heads: int = 2, width: int = 3) -> dict:
    rng = np.random.default_rng(0)
    arrays = {"k": np.array([1, 2]), "seed": np.array([0, 0]), "uid": np.arange(10, 10 + n_q, dtype=np.uint64),
              "label_index": np.zeros(n_q, dtype=int)}
    shapes = {"outputs": (n_q, n_layers, dim), "scores": (n_q, n_layers, heads, width)}
    for name, lead in (("zs", ()), ("icl", (2,)), ("ft", (2,))):
        for field, shape in shapes.items():
            arrays[f"{name}_{field}"] = rng.normal(size=lead + shape).astype(np.float32)
        arrays[f"{name}_n_query"] = np.broadcast_to(np.full(n_q, width), lead + (n_q,))
        arrays[f"{name}_n_tokens"] = arrays[f"{name}_n_query"]
        arrays[f"{name}_label_logprobs"] = np.zeros(lead + (n_q, 2), dtype=np.float32)
    return arrays


def test_query_layer_frame_matches_the_metric_functions():
    from iclgd.dai_metrics import dai_report

    arrays = synthetic_arrays()
    correct = pd.DataFrame({"k": [1] * 3 + [2] * 3, "seed": 0, "uid": [10, 11, 12] * 2,
                            "zs_correct": False, "icl_correct": True, "ft_correct": [True, False, True] * 2})
    layers = dai_report.query_layer_frame(arrays, correct, "m", "d", seed=0)
    assert len(layers) == 2 * 3 * 2 and layers["n_layers"].eq(2).all()
    got = layers[(layers["k"] == 2) & (layers["uid"] == 11) & (layers["layer"] == 1)].iloc[0]
    assert got["simaou"] == pytest.approx(dai.simaou(arrays["icl_outputs"][1], arrays["ft_outputs"][1],
                                                     arrays["zs_outputs"])[1, 1])
    assert got["zsl_simam"] == pytest.approx(dai.simam(arrays["icl_scores"][1], arrays["zs_scores"])[1, 1])
    assert not got["ft_correct"] and got["icl_correct"]
    queries = dai_report.query_frame(layers)
    assert len(queries) == 6
    row = queries[(queries["k"] == 2) & (queries["uid"] == 11)].iloc[0]
    assert row["simaou"] == pytest.approx(layers.loc[(layers["k"] == 2) & (layers["uid"] == 11), "simaou"].mean())
    assert row["simam_gain"] == pytest.approx(row["simam"] - row["zsl_simam"])
    with pytest.raises(dai.DaiError, match="without correctness"):
        dai_report.query_layer_frame(arrays, correct[correct["k"] == 1], "m", "d", seed=0)


def hand_queries() -> pd.DataFrame:
    """Two datasets; in 'a' FT fixes queries 0 and 1 of which ICL fixes 0, in 'b' FT fixes nothing."""
    return pd.DataFrame({
        "model": "m", "dataset": ["a"] * 4 + ["b"] * 2, "k": [1, 1, 2, 2, 1, 1], "seed": 0,
        "uid": [0, 1, 0, 1, 0, 1], "n_layers": 2,
        "zs_correct": [False, False, False, True, True, True],
        "ft_correct": [True, True, False, True, True, False],
        "icl_correct": [True, False, True, True, False, True],
        "simaou": [0.2, 0.4, 0.0, 0.2, 0.1, 0.1], "random_simaou": 0.0,
        "simam": [0.9, 0.8, 0.7, 0.6, 0.5, np.nan], "zsl_simam": 0.5,
    }).assign(simaou_gain=lambda f: f["simaou"] - f["random_simaou"], simam_gain=lambda f: f["simam"] - f["zsl_simam"])


def test_summary_levels_rec2ftp_and_undefined_denominator():
    from iclgd.dai_metrics import dai_report

    summary = dai_report.summarise(hand_queries(), {"n_boot": 200, "ci": 0.95, "seed": 0})
    levels = set(zip(summary["dataset"], summary["k"]))
    assert levels == {("a", "1"), ("a", "2"), ("b", "1"), ("a", "all"), ("b", "all"), ("all", "all")}
    a = summary[(summary["dataset"] == "a") & (summary["k"] == "all")].iloc[0]
    assert a["rec2ftp"] == 0.5 and a["rec2ftp_n"] == 2  # of uid 0 and 1 at k=1, ICL fixes uid 0
    assert a["icl_fix_rate"] == pytest.approx(2 / 3) and a["zs_wrong_n"] == 3
    assert a["simaou"] == pytest.approx(0.2) and a["n_queries"] == 4
    b = summary[(summary["dataset"] == "b") & (summary["k"] == "all")].iloc[0]
    assert np.isnan(b["rec2ftp"]) and b["rec2ftp_n"] == 0 and np.isnan(b["rec2ftp_lo"])
    assert b["simam"] == pytest.approx(0.5)  # the undefined query is skipped
    pooled = summary[summary["dataset"] == "all"].iloc[0]
    assert pooled["rec2ftp"] == 0.5 and pooled["n_queries"] == 6
    assert pooled["simaou_lo"] <= pooled["simaou"] <= pooled["simaou_hi"]


def test_paper_outputs_say_undefined_and_name_every_row(tmp_path):
    from iclgd.dai_metrics import dai_report

    summary = dai_report.summarise(hand_queries(), {"n_boot": 200, "ci": 0.95, "seed": 0})
    tex = dai_report.dai_table_tex(summary)
    assert "undefined (0)" in tex and "\\label{tab:dai}" in tex and tex.count("\\texttt{m}") == 3
    one = dai_report.summarise(hand_queries().query("dataset == 'a'"), {"n_boot": 200, "ci": 0.95, "seed": 0})
    assert dai_report.dai_table_tex(one).count("\\texttt{m}") == 1  # no "all" row repeating the only dataset
    text = dai_report.dai_summary(summary)
    assert "Rec2FTP is 50\\%" in text and "in 0 of the 1 runs where it is defined" in text
    macros = dai_report.dai_macros(summary, {"datasets": ["a", "b"], "k": [1, 2], "lr": "1e-3", "n_queries": 16})
    assert macros["DaiMRec"] == "50" and macros["DaiMBRec"] == "undefined" and macros["DaiLr"] == "0.001"
    assert macros["DaiNRuns"] == "2" and all(v for v in macros.values())
    layers = pd.DataFrame({"model": "m", "layer": [0, 1], "n_layers": 2, "n": 3,
                           **{f"{m}{s}": [0.1, 0.2] for m in dai_report.METRICS for s in ("", "_lo", "_hi")}})
    dai_report.plot_layers(layers, tmp_path / "f.pdf", tmp_path / "f.png")
    assert (tmp_path / "f.pdf").stat().st_size > 0 and (tmp_path / "f.png").stat().st_size > 0
