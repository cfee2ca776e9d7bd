"""The SFT loss without whole logits: lm_head + cross-entropy fused per chunk of scored tokens.

At LIMO's 16,384 tokens a Qwen2.5-32B logits tensor is 16k x 152k: 5 GB in bf16, and transformers' stock loss
keeps ~14 bytes per logit alive at its peak (32 GiB); `limo_ray.train.memory` refuses that plan on 80 GB cards.
Here the logits never exist whole: for each chunk of `chunk_tokens` scored positions the fp32 logits, the
loss and the gradients of hidden states and lm_head weight are computed at once (Liger-Kernel's "fused linear
cross-entropy", in plain PyTorch), and only those gradients are kept for the backward pass. Peak: one chunk's
fp32 logits and softmax, plus an fp32 accumulator the size of the lm_head weight.

ZeRO-3 gathers a module's parameters when *that module* runs, forward and backward; so the fused computation
is the forward of `FusedLMHead`, which takes the place of the model's `lm_head` and shares its weight (tied
embeddings stay tied). Called without targets it is the plain lm_head (generation, the export probe). Every
rank calls it exactly once per micro-batch, empty ones included: ZeRO-3's gathers are collective.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from limo_ray.train.data import IGNORE_INDEX

DEFAULT_CHUNK_TOKENS = 1024  # as `limo_ray.train.memory` assumes for the "fused" loss


class _FusedLinearCrossEntropy(torch.autograd.Function):
    """sum over rows of CE(hidden @ weight.T, targets); gradients computed chunk by chunk in the forward pass."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk_tokens: int
    ) -> torch.Tensor:
        needs_grad = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        grad_hidden = torch.empty_like(hidden) if needs_grad else None
        grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if needs_grad else None
        for start in range(0, hidden.shape[0], chunk_tokens):
            part = hidden[start : start + chunk_tokens]
            wanted = targets[start : start + chunk_tokens]
            logits = (part @ weight.t()).float()
            total += F.cross_entropy(logits, wanted, reduction="sum")
            if needs_grad:
                # d(sum CE)/d logits = softmax - one_hot, then back through the matmul in the weight's dtype (as
                # autograd would do on a bf16 lm_head).
                grad_logits = torch.softmax(logits, dim=-1)
                grad_logits[torch.arange(len(wanted), device=wanted.device), wanted] -= 1.0
                grad_logits = grad_logits.to(weight.dtype)
                grad_hidden[start : start + chunk_tokens] = grad_logits @ weight
                grad_weight += (grad_logits.t() @ part).float()
        if needs_grad:
            ctx.save_for_backward(grad_hidden, grad_weight.to(weight.dtype))
        return total

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        grad_hidden, grad_weight = ctx.saved_tensors
        scale = grad_output.to(grad_hidden.dtype)
        return grad_hidden * scale, grad_weight * scale, None, None


def fused_linear_cross_entropy(
    hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk_tokens: int = DEFAULT_CHUNK_TOKENS
) -> torch.Tensor:
    """Sum of the token cross-entropy of `hidden @ weight.T` over targets that are not IGNORE_INDEX (fp32)."""
    flat_targets = targets.reshape(-1)
    valid = flat_targets != IGNORE_INDEX
    selected = hidden.reshape(-1, hidden.shape[-1])[valid]
    return _FusedLinearCrossEntropy.apply(selected, weight, flat_targets[valid], chunk_tokens)


class FusedLMHead(torch.nn.Module):
    """Drop-in for a bias-free `lm_head`: logits without targets, the fused loss sum with them."""

    def __init__(self, lm_head: torch.nn.Module, chunk_tokens: int = DEFAULT_CHUNK_TOKENS) -> None:
        super().__init__()
        if getattr(lm_head, "bias", None) is not None:
            raise ValueError("the fused loss supports a bias-free lm_head (Qwen2 and Llama-style models)")
        self.weight = lm_head.weight  # the same Parameter: tied embeddings stay tied, checkpoints keep their keys
        self.chunk_tokens = chunk_tokens

    def forward(self, hidden: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        if targets is None:
            return F.linear(hidden, self.weight)
        return fused_linear_cross_entropy(hidden, self.weight, targets, self.chunk_tokens)


class CausalLMForSFT(torch.nn.Module):
    """The module DeepSpeed trains: a HF causal LM whose forward returns the loss *sum* over the targets.

    Called without `targets` it returns the logits, like the wrapped model.
    """

    def __init__(self, lm: torch.nn.Module, chunk_tokens: int = DEFAULT_CHUNK_TOKENS) -> None:
        super().__init__()
        if not isinstance(lm.get_output_embeddings(), FusedLMHead):
            lm.set_output_embeddings(FusedLMHead(lm.get_output_embeddings(), chunk_tokens))
        self.lm = lm

    def forward(self, targets: torch.Tensor | None = None, **inputs: Any) -> torch.Tensor:
        if targets is None:
            return self.lm(**inputs).logits
        hidden = self.lm.get_decoder()(**inputs).last_hidden_state
        return self.lm.get_output_embeddings()(hidden, targets)
