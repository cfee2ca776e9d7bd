"""The fused lm_head + cross-entropy loss equals the plain logits computation, values and gradients."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from limo_ray.config import LIMO_SYSTEM_PROMPT
from limo_ray.train.data import IGNORE_INDEX, TokenizedData, load_tokenizer, tokenize_row
from limo_ray.train.loss import CausalLMForSFT, FusedLMHead, fused_linear_cross_entropy
from limo_ray.train.packing import collate, pack_best_fit, token_loss_sum
from tests.fixtures import limo_rows


def test_fused_loss_and_gradients_equal_the_logits_computation() -> None:
    torch.manual_seed(0)
    hidden = torch.randn(3, 40, 16, requires_grad=True)
    weight = torch.randn(50, 16, requires_grad=True)
    targets = torch.randint(0, 50, (3, 40))
    targets[:, :7] = IGNORE_INDEX
    fused = fused_linear_cross_entropy(hidden, weight, targets, chunk_tokens=9)
    fused_grads = torch.autograd.grad(fused * 0.5, (hidden, weight))
    plain = token_loss_sum(hidden @ weight.t(), targets)
    plain_grads = torch.autograd.grad(plain * 0.5, (hidden, weight))
    assert float(fused.detach()) == pytest.approx(float(plain.detach()), rel=1e-6)
    for a, b in zip(fused_grads, plain_grads, strict=True):
        assert torch.allclose(a, b, atol=1e-5)


def test_no_target_gives_zero_and_still_a_graph() -> None:
    hidden = torch.randn(1, 5, 8, requires_grad=True)
    weight = torch.randn(11, 8, requires_grad=True)
    loss = fused_linear_cross_entropy(hidden, weight, torch.full((1, 5), IGNORE_INDEX))
    loss.backward()
    assert float(loss.detach()) == 0.0 and float(weight.grad.abs().sum()) == 0.0


def test_sft_model_returns_the_loss_sum_with_targets_and_the_logits_without(tiny_model: Path) -> None:
    from transformers import AutoModelForCausalLM

    tokenizer = load_tokenizer(str(tiny_model))
    data = TokenizedData.from_rows(
        [tokenize_row(tokenizer, r, LIMO_SYSTEM_PROMPT, 512, "drop") for r in limo_rows(6, seed=2)]
    )
    batch = collate(data, pack_best_fit(data.lengths.tolist(), 512), "rows", 0)
    plain = AutoModelForCausalLM.from_pretrained(str(tiny_model), dtype=torch.float32, attn_implementation="sdpa")
    sft = CausalLMForSFT(copy.deepcopy(plain), chunk_tokens=100)
    head = sft.lm.get_output_embeddings()
    assert isinstance(head, FusedLMHead) and head.weight is sft.lm.get_input_embeddings().weight  # still tied

    expected = token_loss_sum(plain(**batch.model_inputs()).logits, batch.targets)
    expected.backward()
    got = sft(targets=batch.targets, **batch.model_inputs())
    got.backward()
    assert float(got.detach()) == pytest.approx(float(expected.detach()), rel=1e-6)
    grads = {name.removeprefix("lm."): p.grad for name, p in sft.named_parameters()}
    for name, param in plain.named_parameters():
        assert torch.allclose(param.grad, grads[name], atol=1e-5, rtol=1e-4), name
    with torch.no_grad():
        assert torch.equal(sft(**batch.model_inputs()), plain(**batch.model_inputs()).logits)
