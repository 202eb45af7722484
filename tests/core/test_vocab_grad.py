"""FactoredVocab against plain torch autograd on the tiny random Llama: the factored head gradient plus the
sparse embedding gradient is autograd's dense gradient of the full logits, and `step` makes the dense
optimiser's update (plain SGD by one addmm_, momentum SGD and Adam through a densified gradient)."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import LlamaForCausalLM

from iclgd.core import models
from iclgd.core.master_weights import MasterWeights
from iclgd.core.vocab_grad import FactoredVocab

#: Token-id rows of 5-8 ids and each row's target at its last position.
ROWS = [[11, 250, 3000, 47, 912], [5, 77, 1234, 4321, 60, 8], [900, 901, 902, 17, 18, 19, 20], [42] * 8]
TARGETS = [300, 301, 302, 303]


def loss_of(model) -> torch.Tensor:
    """Plain reference: one unpadded forward per row, full-vocabulary cross-entropy of its target at its
    last token, averaged over the rows."""
    losses = [
        torch.nn.functional.cross_entropy(model(input_ids=torch.tensor([row])).logits[0, -1].float(),
                                          torch.tensor(target))
        for row, target in zip(ROWS, TARGETS)
    ]
    return torch.stack(losses).mean()


def train_all(model) -> list[torch.nn.Parameter]:
    for p in model.parameters():
        p.requires_grad_(True)
        p.grad = None
    return list(model.parameters())


def test_factored_gradient_is_autograds_gradient_of_the_full_logits(model):
    """Tied embedding/head: sparse embedding rows + grad_logits.T @ hidden == autograd's dense gradient."""
    weight = model.get_output_embeddings().weight
    assert weight is model.get_input_embeddings().weight  # the tiny Llama ties them
    train_all(model)
    (dense,) = torch.autograd.grad(loss_of(model), weight)
    with FactoredVocab(model) as vocab:
        assert vocab.active
        loss_of(model).backward()
        assert weight.grad.is_sparse and len(vocab.factors) == len(ROWS)  # one factor pair per head call
        grads, hidden = (torch.cat(parts) for parts in zip(*vocab.factors))
        assert grads.shape == (sum(map(len, ROWS)), weight.shape[0]) and hidden.shape[1] == weight.shape[1]
        looked_up = weight.grad.coalesce().indices()[0]
        assert set(looked_up.tolist()) == {i for row in ROWS for i in row}  # only the rows read
        factored = weight.grad.to_dense() + grads.T @ hidden
    torch.testing.assert_close(factored, dense, rtol=0, atol=1e-6)
    assert dense.abs().max() > 1e-3  # not a vacuous comparison


def test_untied_head_and_embedding_each_get_their_own_gradient(tiny):
    """An untied model: the head's factors and the embedding's sparse rows match autograd separately."""
    tok = tiny[1]
    config = models.tiny_config(len(tok), tok.bos_token_id, tok.eos_token_id, tok.pad_token_id)
    config.tie_word_embeddings = False
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    head, embed = model.get_output_embeddings().weight, model.get_input_embeddings().weight
    assert head is not embed
    train_all(model)
    dense_head, dense_embed = torch.autograd.grad(loss_of(model), [head, embed])
    with FactoredVocab(model) as vocab:
        loss_of(model).backward()
        assert head.grad is None and embed.grad.is_sparse
        grads, hidden = (torch.cat(parts) for parts in zip(*vocab.factors))
        torch.testing.assert_close(grads.T @ hidden, dense_head, rtol=0, atol=1e-6)
        torch.testing.assert_close(embed.grad.to_dense(), dense_embed, rtol=0, atol=1e-6)


OPTIMISERS = {
    "sgd": lambda params: torch.optim.SGD(params, lr=0.05),  # factors applied by one addmm_
    "sgd_momentum": lambda params: torch.optim.SGD(params, lr=0.05, momentum=0.9),  # densified
    "adam": lambda params: torch.optim.Adam(params, lr=1e-3),  # densified
}


@pytest.mark.parametrize("name", sorted(OPTIMISERS))
def test_step_makes_the_dense_optimisers_update(tiny, name):
    """Three steps through FactoredVocab move every parameter as three steps on autograd's dense gradients."""
    dense, factored = copy.deepcopy(tiny[0]), copy.deepcopy(tiny[0])
    base = {n: p.detach().clone() for n, p in dense.named_parameters()}
    opt = OPTIMISERS[name](train_all(dense))
    for _ in range(3):
        opt.zero_grad(set_to_none=True)
        loss_of(dense).backward()
        opt.step()
    opt = OPTIMISERS[name](train_all(factored))
    with FactoredVocab(factored) as vocab:
        for _ in range(3):
            vocab.zero_grad(opt)
            loss_of(factored).backward()
            assert vocab.factors
            vocab.step(opt)
            assert not vocab.factors  # applied once, then dropped
    assert not factored.model.embed_tokens.sparse and "forward" not in vars(factored.lm_head)  # restored
    want, got = dict(dense.named_parameters()), dict(factored.named_parameters())
    assert not torch.equal(want["model.embed_tokens.weight"], base["model.embed_tokens.weight"])
    for n in want:
        torch.testing.assert_close(got[n], want[n], rtol=1e-5, atol=1e-6, msg=n)


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_bf16_masters_get_the_head_gradient_in_float32(tiny, name):
    """A bf16 model through float32 masters: the head's master moves as the dense optimiser moves a float32
    copy of it on autograd's (bf16) gradient, to bf16 rounding of that gradient."""
    model = copy.deepcopy(tiny[0]).to(torch.bfloat16)
    weight = model.get_output_embeddings().weight
    start = weight.detach().float()
    params = train_all(model)
    (dense,) = torch.autograd.grad(loss_of(model), weight)
    ref = torch.nn.Parameter(start.clone())
    ref_opt = OPTIMISERS[name]([ref])
    ref.grad = dense.float()
    ref_opt.step()
    masters = MasterWeights(params)
    opt = OPTIMISERS[name](masters.params)
    with FactoredVocab(model, masters) as vocab:
        vocab.zero_grad(opt)
        loss_of(model).backward()
        vocab.step(opt)
    moved, want = masters.master(weight).detach() - start, ref.detach() - start
    assert masters.master(weight).dtype == torch.float32 and want.abs().max() > 0
    clear = dense.float().abs() > 1e-6  # Adam's first step is lr x g / (|g| + eps): rounding decides it near 0
    assert clear.float().mean() > 0.5
    err = (moved - want)[clear].norm() / want[clear].norm()
    assert err < 1e-2, float(err)
    torch.testing.assert_close(weight.detach(), masters.master(weight).detach().to(torch.bfloat16), rtol=0, atol=0)


def test_inactive_when_the_head_is_frozen(model):
    for name, p in model.named_parameters():
        p.requires_grad_(".self_attn." in name)  # the vocabulary matrices frozen
    with FactoredVocab(model) as vocab:
        assert not vocab.active and "forward" not in vars(model.lm_head)
        assert not model.get_input_embeddings().sparse


def test_the_model_is_restored_when_the_block_raises(model):
    train_all(model)
    with pytest.raises(RuntimeError, match="boom"):
        with FactoredVocab(model) as vocab:
            assert vocab.active and model.get_input_embeddings().sparse and "forward" in vars(model.lm_head)
            loss_of(model).backward()
            raise RuntimeError("boom")
    assert not model.get_input_embeddings().sparse and "forward" not in vars(model.lm_head)
    assert not vocab.factors
