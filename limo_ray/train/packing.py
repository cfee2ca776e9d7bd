"""Packing and batching: which samples share a sequence, which rank runs which micro-batch, what is scored.

Packing puts several samples in one sequence of at most `max_seq_len` tokens (best-fit decreasing: LIMO's
long-tail lengths leave little room unused), with position ids restarting at 0 for every sample. Two layouts:
  - "flat": the whole micro-batch in one row, no padding, sample boundaries passed as `cu_seq_lens`: taken by
    FlashAttention-2's varlen kernel on GPU and by `attention.varlen_sdpa` (causal sdpa per sample) on CPU;
  - "rows": one packed row per sequence, padded to the longest (the padding a segment of its own); transformers
    reads the boundaries from the position ids and builds a block-diagonal causal mask (eager attention).
Targets are shifted per sample (`targets[t]` is the label of token t+1 of the same sample), so no prediction
ever crosses a sample boundary whatever the layout.

The loss of a step is the token mean over every assistant token of the global batch (all micro-batches of all
ranks), as if the whole batch were one sequence: each micro-batch contributes its loss *sum*, scaled by
`world_size * grad_accum / global_tokens` to undo DeepSpeed's mean over ranks and accumulation steps. Training
computes that sum without whole logits (loss.py); `token_loss_sum` here is the same sum from logits, for
tests, benches and references.

The plan is a pure function of (lengths, seed, epoch): every rank computes the same one, and a resumed run
continues exactly where the interrupted one stopped.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from limo_ray.train.data import IGNORE_INDEX, TokenizedData

Layout = Literal["rows", "flat"]
# A micro-batch is a list of rows; a row is the list of sample indices packed into one sequence.
Row = list[int]
MicroBatch = list[Row]


def pack_best_fit(lengths: Sequence[int], capacity: int) -> list[Row]:
    """Best-fit decreasing bin packing of sample indices into rows of at most `capacity` tokens.

    Deterministic (ties broken by index). Samples longer than `capacity` get a row of their own: truncation
    is the tokeniser's job, packing never cuts a sample.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    rows: list[Row] = []
    free: list[tuple[int, int]] = []  # (remaining capacity, row index), sorted
    for i in order:
        size = int(lengths[i])
        at = bisect.bisect_left(free, (size, -1))
        if at < len(free):
            remaining, r = free.pop(at)
            rows[r].append(i)
            bisect.insort(free, (remaining - size, r))
        else:
            rows.append([i])
            bisect.insort(free, (capacity - size, len(rows) - 1))
    return rows


def epoch_rows(lengths: Sequence[int], packing: bool, capacity: int, seed: int, epoch: int) -> list[Row]:
    """The rows of one epoch, shuffled by (seed, epoch); packs are formed once, so every epoch has the same ones."""
    rows = pack_best_fit(lengths, capacity) if packing else [[i] for i in range(len(lengths))]
    random.Random(f"{seed}:{epoch}").shuffle(rows)
    return rows


def step_plan(
    rows: Sequence[Row], micro_batch_size: int, grad_accum: int, world_size: int
) -> list[list[list[MicroBatch]]]:
    """`plan[step][rank]` = that rank's `grad_accum` micro-batches for the step; never an empty one.

    A step takes `global = micro_batch_size x grad_accum x world_size` rows, in the epoch's order. The rows left
    after the last full step make one smaller step when there are enough to give each of its `grad_accum x
    world_size` micro-batches at least one (spread evenly, so none holds more than `micro_batch_size`); fewer than
    that sit this epoch out (`rows_left_out`). Every rank must run the same number of forward/backward passes
    (ZeRO-3 gathers parameters collectively), and a pass over nothing would be a padded dummy; the loss stays the
    token mean of the rows the step does hold.
    """
    slots = grad_accum * world_size
    full, tail = divmod(len(rows), micro_batch_size * slots)
    sizes = [[micro_batch_size] * slots] * full
    if tail >= slots:
        sizes.append([tail // slots + (j < tail % slots) for j in range(slots)])
    plan, at = [], 0
    for step_sizes in sizes:
        micro = []
        for size in step_sizes:
            micro.append(list(rows[at : at + size]))
            at += size
        # Micro-batch j of a step goes to rank j % world_size: rank loads stay even in the smaller last step.
        plan.append([micro[rank::world_size] for rank in range(world_size)])
    return plan


def steps_per_epoch(num_rows: int, micro_batch_size: int, grad_accum: int, world_size: int) -> int:
    """Optimizer steps `step_plan` makes of `num_rows` rows."""
    slots = grad_accum * world_size
    full, tail = divmod(num_rows, micro_batch_size * slots)
    return full + (tail >= slots)


def rows_left_out(num_rows: int, micro_batch_size: int, grad_accum: int, world_size: int) -> int:
    """Rows per epoch too few to give every micro-batch of one more step a row: they wait for the next epoch."""
    slots = grad_accum * world_size
    tail = num_rows % (micro_batch_size * slots)
    return tail if tail < slots else 0


@dataclass
class Batch:
    """Model inputs for one micro-batch plus what the loss and the logs need."""

    input_ids: torch.Tensor  # [rows, length] int64
    position_ids: torch.Tensor  # [rows, length], restarting at 0 per sample
    targets: torch.Tensor  # [rows, length], IGNORE_INDEX where no loss
    num_targets: int
    num_tokens: int  # real (non-pad) tokens
    flash_kwargs: dict[str, Any] = field(default_factory=dict)

    def model_inputs(self) -> dict[str, Any]:
        # attention_mask stays None: the position ids carry the sample boundaries (see the module docstring).
        return {
            "input_ids": self.input_ids,
            "position_ids": self.position_ids,
            "attention_mask": None,
            "use_cache": False,
            **self.flash_kwargs,
        }

    def to(self, device: torch.device | str) -> Batch:
        flash = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in self.flash_kwargs.items()}
        return Batch(
            self.input_ids.to(device),
            self.position_ids.to(device),
            self.targets.to(device),
            self.num_targets,
            self.num_tokens,
            flash,
        )


def _sample_arrays(data: TokenizedData, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ids, mask = data.sample(i)
    targets = np.full(len(ids), IGNORE_INDEX, dtype=np.int64)
    targets[:-1] = np.where(mask[1:], ids[1:], IGNORE_INDEX)
    return ids.astype(np.int64), np.arange(len(ids), dtype=np.int64), targets


def collate(data: TokenizedData, micro_batch: MicroBatch, layout: Layout, pad_id: int) -> Batch:
    """Tensors for one micro-batch: packed rows ("rows", padded) or everything in one row ("flat", no padding)."""
    rows = [[_sample_arrays(data, i) for i in row] for row in micro_batch if row]
    if not rows:  # an empty micro-batch: one pad token, no target
        one = torch.tensor([[pad_id]], dtype=torch.long)
        zero = torch.zeros((1, 1), dtype=torch.long)
        return Batch(one, zero, torch.full((1, 1), IGNORE_INDEX, dtype=torch.long), 0, 0)
    if layout == "flat":
        rows = [[segment for row in rows for segment in row]]
    length = max(sum(len(s[0]) for s in row) for row in rows)
    ids = np.full((len(rows), length), pad_id, dtype=np.int64)
    pos = np.zeros((len(rows), length), dtype=np.int64)
    targets = np.full((len(rows), length), IGNORE_INDEX, dtype=np.int64)
    for r, row in enumerate(rows):
        at = 0
        for sample_ids, sample_pos, sample_targets in row:
            n = len(sample_ids)
            ids[r, at : at + n], pos[r, at : at + n], targets[r, at : at + n] = sample_ids, sample_pos, sample_targets
            at += n
        pos[r, at:] = np.arange(length - at)  # padding: a segment of its own
    num_tokens = sum(len(s[0]) for row in rows for s in row)
    flash: dict[str, Any] = {}
    if layout == "flat":
        lengths = [len(s[0]) for s in rows[0]]
        cu = torch.tensor(np.concatenate([[0], np.cumsum(lengths)]), dtype=torch.int32)
        flash = {"cu_seq_lens_q": cu, "cu_seq_lens_k": cu, "max_length_q": max(lengths), "max_length_k": max(lengths)}
    return Batch(
        torch.from_numpy(ids),
        torch.from_numpy(pos),
        torch.from_numpy(targets),
        int((targets != IGNORE_INDEX).sum()),
        num_tokens,
        flash,
    )


def token_loss_sum(logits: torch.Tensor, targets: torch.Tensor, chunk_tokens: int = 8192) -> torch.Tensor:
    """Sum of the cross-entropy over every target that is not IGNORE_INDEX, computed in fp32, from logits.

    Only the target positions are scored, in chunks; with 16-bit logits each chunk is recomputed in the
    backward pass instead of keeping its fp32 copy (16k tokens x 152k vocab would be 10 GB of fp32 logits).
    """
    flat_targets = targets.reshape(-1)
    valid = flat_targets != IGNORE_INDEX
    if not bool(valid.any()):
        return logits.sum() * 0.0  # keeps the graph: every rank still runs its backward
    selected = logits.reshape(-1, logits.shape[-1])[valid]
    wanted = flat_targets[valid]
    total = selected.new_zeros((), dtype=torch.float32)
    recompute = selected.requires_grad and selected.dtype != torch.float32
    for start in range(0, len(wanted), chunk_tokens):
        part, part_targets = selected[start : start + chunk_tokens], wanted[start : start + chunk_tokens]
        if recompute:
            total = total + torch.utils.checkpoint.checkpoint(_ce_sum, part, part_targets, use_reentrant=False)
        else:
            total = total + _ce_sum(part, part_targets)
    return total


def _ce_sum(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.float(), targets, reduction="sum")


def real_token_fraction(micro_batches: Sequence[Batch]) -> float:
    """Real tokens over all positions computed: 1.0 means no padding at all."""
    real = sum(b.num_tokens for b in micro_batches)
    total = sum(int(b.input_ids.numel()) for b in micro_batches)
    return real / max(1, total)
