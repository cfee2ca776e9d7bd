"""Packing: bin packing, the per-rank step plan, and that packed sequences train exactly like separate ones."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from limo_ray.config import LIMO_SYSTEM_PROMPT
from limo_ray.train.attention import packed_attention, register_varlen_sdpa
from limo_ray.train.data import IGNORE_INDEX, TokenizedData, load_tokenizer, tokenize_row
from limo_ray.train.packing import (
    collate,
    epoch_rows,
    pack_best_fit,
    real_token_fraction,
    rows_left_out,
    step_plan,
    steps_per_epoch,
    token_loss_sum,
)
from tests.fixtures import limo_rows


@pytest.fixture(scope="module")
def data(tiny_model: Path) -> TokenizedData:
    tokenizer = load_tokenizer(str(tiny_model))
    rows = [tokenize_row(tokenizer, r, LIMO_SYSTEM_PROMPT, 512, "drop") for r in limo_rows(12, seed=11)]
    return TokenizedData.from_rows(rows)


def _load(tiny_model: Path, attn_implementation: str):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    loaded = AutoModelForCausalLM.from_pretrained(
        str(tiny_model), dtype=torch.float32, attn_implementation=attn_implementation
    )
    # Random init is near-uniform; perturb so that positions and contexts visibly matter in the logits.
    with torch.no_grad():
        for param in loaded.parameters():
            param.add_(torch.randn_like(param) * 0.2)
    return loaded.eval()


@pytest.fixture(scope="module")
def model(tiny_model: Path):
    """sdpa with the block-diagonal mask transformers builds from position ids ("rows" layout)."""
    return _load(tiny_model, "sdpa")


@pytest.fixture(scope="module")
def varlen_model(tiny_model: Path):
    """The CPU training path: per-sample sdpa over one flat row ("flat" layout, cu_seq_lens)."""
    return _load(tiny_model, register_varlen_sdpa())


def _loss(model, batch) -> tuple[torch.Tensor, int]:
    return token_loss_sum(model(**batch.model_inputs()).logits, batch.targets), batch.num_targets


def test_best_fit_keeps_every_sample_once_within_capacity() -> None:
    rng = random.Random(0)
    lengths = [rng.randint(1, 100) for _ in range(500)]
    rows = pack_best_fit(lengths, 128)
    assert sorted(i for row in rows for i in row) == list(range(500))
    assert all(sum(lengths[i] for i in row) <= 128 for row in rows)
    assert sum(lengths) / (128 * len(rows)) > 0.95


def test_long_tail_lengths_pack_to_at_least_95_percent_real_tokens() -> None:
    rng = np.random.default_rng(0)
    lengths = np.clip(rng.lognormal(mean=5.0, sigma=0.8, size=800), 16, 2048).astype(int).tolist()
    rows = pack_best_fit(lengths, 2048)
    assert sum(lengths) / (2048 * len(rows)) >= 0.95


def test_step_plan_gives_every_rank_the_same_number_of_micro_batches_and_every_row_once() -> None:
    rows = [[i] for i in range(23)]
    plan = step_plan(rows, micro_batch_size=2, grad_accum=3, world_size=2)
    assert len(plan) == steps_per_epoch(23, 2, 3, 2) == 2
    assert all(len(per_rank) == 3 for step in plan for per_rank in step)
    seen = [i for step in plan for per_rank in step for mb in per_rank for row in mb for i in row]
    assert sorted(seen) == list(range(23))


@pytest.mark.parametrize(
    ("num_rows", "micro", "accum", "world"),
    [(23, 2, 3, 2), (817, 1, 1, 16), (818, 1, 2, 2), (15, 2, 2, 2), (15, 4, 1, 2), (9, 1, 4, 2), (7, 1, 4, 2)],
)
def test_no_step_ever_holds_an_empty_micro_batch(num_rows: int, micro: int, accum: int, world: int) -> None:
    """Every micro-batch of every step, the last one included, holds real rows; the rows that cannot give every
    micro-batch of one more step a row sit the epoch out, and nothing else is left out or seen twice."""
    plan = step_plan([[i] for i in range(num_rows)], micro, accum, world)
    assert len(plan) == steps_per_epoch(num_rows, micro, accum, world)
    assert all(len(step) == world and all(len(per_rank) == accum for per_rank in step) for step in plan)
    sizes = [len(mb) for step in plan for per_rank in step for mb in per_rank]
    assert all(1 <= size <= micro for size in sizes)
    seen = [i for step in plan for per_rank in step for mb in per_rank for row in mb for i in row]
    left_out = rows_left_out(num_rows, micro, accum, world)
    assert sorted(seen) == list(range(num_rows - left_out)) and left_out < accum * world


def test_the_tail_of_an_epoch_is_a_smaller_step_spread_over_every_micro_batch() -> None:
    # 15 packed rows, 2 per micro-batch, 2 micro-batches on each of 2 ranks: one step of 8, then 7 rows as 2+2+2+1.
    plan = step_plan([[i] for i in range(15)], micro_batch_size=2, grad_accum=2, world_size=2)
    assert [[len(mb) for mb in per_rank] for per_rank in plan[1]] == [[2, 2], [2, 1]]
    # The paper preset: 817 samples, 1 per GPU on 16 GPUs: 51 steps of 16, and the 817th waits for the next epoch.
    assert (steps_per_epoch(817, 1, 1, 16), rows_left_out(817, 1, 1, 16)) == (51, 1)
    assert steps_per_epoch(3, 1, 2, 2) == 0  # run.plan_steps refuses that batch


def test_epoch_order_depends_on_seed_and_epoch_only() -> None:
    lengths = [5, 9, 3, 7, 2, 8, 4, 6]
    assert epoch_rows(lengths, True, 12, seed=1, epoch=0) == epoch_rows(lengths, True, 12, seed=1, epoch=0)
    assert epoch_rows(lengths, False, 12, seed=1, epoch=0) != epoch_rows(lengths, False, 12, seed=1, epoch=1)


def test_targets_are_shifted_within_each_sample_and_never_cross_a_boundary(data: TokenizedData) -> None:
    batch = collate(data, [[0, 1]], "rows", pad_id=0)
    first = int(data.lengths[0])
    ids0, mask0 = data.sample(0)
    assert batch.targets[0, first - 1] == IGNORE_INDEX  # last token of sample 0 predicts nothing of sample 1
    assert batch.targets[0, : first - 1].tolist() == np.where(mask0[1:], ids0[1:], IGNORE_INDEX).tolist()
    assert batch.position_ids[0, first] == 0
    # Every labelled token is some target (a sample's first token, never labelled, is the only one unpredicted).
    assert batch.num_targets == int(data.label_mask[: data.offsets[2]].sum())


@pytest.mark.parametrize("path", ["rows+mask", "flat+varlen_sdpa"])
def test_packed_loss_equals_the_loss_of_the_same_samples_unpacked(
    model, varlen_model, data: TokenizedData, path: str
) -> None:
    rows = pack_best_fit(data.lengths.tolist(), 512)
    assert max(len(r) for r in rows) >= 2
    packed_model, layout = (model, "rows") if path == "rows+mask" else (varlen_model, "flat")
    with torch.no_grad():
        packed_sum, packed_n = _loss(packed_model, collate(data, rows, layout, pad_id=0))
        single = [_loss(model, collate(data, [[i]], "rows", pad_id=0)) for i in range(len(data))]
    unpacked = sum(s for s, _ in single) / sum(n for _, n in single)
    packed = packed_sum / packed_n
    assert packed_n == sum(n for _, n in single)
    assert abs(float(packed) - float(unpacked)) < 1e-5


@pytest.mark.parametrize("path", ["rows+mask", "flat+varlen_sdpa"])
def test_no_attention_crosses_samples_in_a_packed_sequence(model, varlen_model, data: TokenizedData, path) -> None:
    packed_model, layout = (model, "rows") if path == "rows+mask" else (varlen_model, "flat")
    batch = collate(data, [[0, 1, 2]], layout, pad_id=0)
    a, b = int(data.lengths[0]), int(data.lengths[1])
    perturbed = collate(data, [[0, 1, 2]], layout, pad_id=0)
    perturbed.input_ids[0, a + 1 : a + b] = torch.randint(3, 300, (b - 1,))  # rewrite sample 1 (after its first token)
    with torch.no_grad():
        before = packed_model(**batch.model_inputs()).logits[0]
        after = packed_model(**perturbed.model_inputs()).logits[0]
    assert torch.equal(before[:a], after[:a])  # sample 0 precedes: causal anyway
    assert (before[a + 1 : a + b] - after[a + 1 : a + b]).abs().max() > 1e-2  # sample 1 itself did change
    assert (before[a + b :] - after[a + b :]).abs().max() < 1e-6  # sample 2 never saw sample 1


def test_cpu_sdpa_trains_packed_rows_flat_with_varlen_sdpa_and_gpu_with_flash_attention() -> None:
    assert packed_attention("sdpa") == (register_varlen_sdpa(), "flat")
    assert packed_attention("flash_attention_2") == ("flash_attention_2", "flat")
    assert packed_attention("eager") == ("eager", "rows")


def test_padding_is_invisible_to_the_samples(model, data: TokenizedData) -> None:
    with torch.no_grad():
        alone = model(**collate(data, [[3]], "rows", pad_id=0).model_inputs()).logits[0]
        padded_batch = collate(data, [[3], [0, 1]], "rows", pad_id=0)  # row 0 is padded to the packed row's length
        padded = model(**padded_batch.model_inputs()).logits[0, : alone.shape[0]]
    assert padded_batch.input_ids.shape[1] > alone.shape[0]
    assert (alone - padded).abs().max() < 1e-5
    assert real_token_fraction([padded_batch]) < 1.0


def test_empty_micro_batch_has_no_targets_but_a_graph(model, data: TokenizedData) -> None:
    batch = collate(data, [], "rows", pad_id=0)
    loss = token_loss_sum(model(**batch.model_inputs()).logits, batch.targets)
    assert batch.num_targets == 0 and float(loss.detach()) == 0.0 and loss.requires_grad


def test_chunked_bf16_loss_matches_the_plain_computation() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 50, 97, dtype=torch.bfloat16, requires_grad=True)
    targets = torch.randint(0, 97, (2, 50))
    targets[:, :10] = IGNORE_INDEX
    chunked = token_loss_sum(logits, targets, chunk_tokens=7)
    (grad_chunked,) = torch.autograd.grad(chunked, logits)
    plain = torch.nn.functional.cross_entropy(
        logits.float().reshape(-1, 97), targets.reshape(-1), ignore_index=IGNORE_INDEX, reduction="sum"
    )
    (grad_plain,) = torch.autograd.grad(plain, logits)
    assert abs(float(chunked.detach()) - float(plain.detach())) < 1e-3
    assert torch.allclose(grad_chunked.float(), grad_plain.float(), atol=1e-2)
