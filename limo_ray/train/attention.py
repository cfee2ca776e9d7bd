"""Attention for packed sequences: which kernel keeps samples apart, per device.

A packed micro-batch is laid out as one row of samples back to back ("flat"), with their boundaries as
`cu_seq_lens` (cumulative lengths), the way FlashAttention-2's varlen kernel takes them. On GPU that kernel does
the work (transformers passes `cu_seq_lens_*` through to it). On CPU there is no varlen kernel, and the
alternative transformers offers — a block-diagonal mask over the whole row, built from the position ids —
computes attention over (sum of lengths)^2 positions and materialises the mask. `varlen_sdpa` instead runs
PyTorch's causal sdpa once per sample inside the same forward pass: only sum(length^2) work, no mask, no padding.
Measured on the packing bench workload (CPU, one thread): 2.3x the tokens/s of the block-diagonal mask and 1.2x
that of a separate forward per sample, with the same loss to float precision.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any, Literal

import torch

VARLEN_SDPA = "limo_varlen_sdpa"
Layout = Literal["rows", "flat"]


def varlen_sdpa(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers attention function: causal sdpa per `cu_seq_lens_q` segment; plain sdpa without them."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    cu_seq_lens = kwargs.pop("cu_seq_lens_q", None)
    for name in ("cu_seq_lens_k", "max_length_q", "max_length_k"):
        kwargs.pop(name, None)
    if cu_seq_lens is None:  # an ordinary forward (generation, the export probe)
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, is_causal=is_causal, **kwargs
        )
    if query.shape[0] != 1:
        raise ValueError(f"{VARLEN_SDPA} takes one flat row of packed samples, got a batch of {query.shape[0]}")
    bounds = cu_seq_lens.tolist()
    outputs = [
        sdpa_attention_forward(
            module,
            query[:, :, start:end],
            key[:, :, start:end],
            value[:, :, start:end],
            None,
            dropout=dropout,
            scaling=scaling,
            is_causal=True,
        )[0]
        for start, end in pairwise(bounds)
        if end > start
    ]
    return torch.cat(outputs, dim=1), None  # [batch, sequence, heads, head_dim], as sdpa_attention_forward returns


def register_varlen_sdpa() -> str:
    """Make `attn_implementation=VARLEN_SDPA` loadable in this process; returns the name."""
    from transformers import AttentionInterface

    AttentionInterface.register(VARLEN_SDPA, varlen_sdpa)
    return VARLEN_SDPA


def packed_attention(attention: str) -> tuple[str, Layout]:
    """(attn_implementation to load the model with, micro-batch layout) for a resolved attention choice."""
    if attention == "flash_attention_2":
        return attention, "flat"
    if attention == "sdpa":
        return register_varlen_sdpa(), "flat"
    # eager: transformers builds the block-diagonal mask from the position ids, row by row.
    return attention, "rows"
