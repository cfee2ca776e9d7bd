"""Packing vs padding for SFT: real tokens trained per second, forward + backward, on a long-tail length mix.

Workload (fixed): 192 sequence lengths drawn (seed 0) from the MATH500 problem+solution lengths in the LIMO eval
data (`../shared/data/limo/eval_data/math/test.jsonl`), scaled so the longest is `--max-seq-len` (1024) — the
long tail of LIMO's chains, at toy scale. Each length becomes a sample of random token ids whose response half
is scored. Model: a tiny Qwen2 (hidden 128, 2 layers, 4 heads, vocab 2048, fp32, sdpa), one thread.

  A (project): the CPU training path — `limo_ray.train.packing` best-fit packing into rows of `max_seq_len`,
    2 rows per micro-batch laid out flat (one row, no padding), position ids restarting per sample, attention
    `limo_ray.train.attention.varlen_sdpa` (causal sdpa per sample), token-sum loss.
  B (reference): the usual dynamic padding — 8 samples per micro-batch in shuffled order, right-padded to the
    longest, 2-D attention mask, same loss.

An epoch over all samples is one round; one warm-up round each, then `--pairs` interleaved pairs (A B A B ...).
Tokens per second count real (non-pad) tokens only. Also printed (not the last line): the two other ways of
keeping packed samples apart on CPU — transformers' block-diagonal mask over padded packed rows, and one
forward per sample — against A (3 rounds each, medians).

    .venv/bin/python bench/packing.py --pairs 5
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from limo_ray.train.attention import register_varlen_sdpa
from limo_ray.train.data import IGNORE_INDEX, TokenizedData
from limo_ray.train.packing import Batch, collate, pack_best_fit, real_token_fraction, token_loss_sum

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "limo" / "eval_data" / "math" / "test.jsonl"
VOCAB = 2048


def long_tail_lengths(path: Path, count: int, max_seq_len: int, seed: int = 0) -> list[int]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    chars = [len(r["problem"]) + len(r.get("solution") or "") for r in rows]
    scale = max_seq_len / max(chars)
    picked = random.Random(seed).sample(chars, count)
    return [min(max_seq_len, max(16, round(c * scale))) for c in picked]


def synthetic_data(lengths: list[int], seed: int = 0) -> TokenizedData:
    """Random token ids; the second half of every sample is the 'response' (scored)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i, n in enumerate(lengths):
        ids = rng.integers(3, VOCAB, size=n, dtype=np.int32)
        labels = np.where(np.arange(n) >= n // 2, ids, IGNORE_INDEX).astype(np.int32)
        rows.append({"id": str(i), "input_ids": ids, "labels": labels, "num_tokens": n, "status": "ok"})
    return TokenizedData.from_rows(rows)


def padded_batches(data: TokenizedData, batch_size: int, seed: int = 0) -> list[tuple[dict, torch.Tensor, int]]:
    """HF-style dynamic padding: (model inputs, shifted targets, real tokens) per micro-batch."""
    order = list(range(len(data)))
    random.Random(seed).shuffle(order)
    out = []
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        length = max(int(data.lengths[i]) for i in chunk)
        ids = torch.zeros((len(chunk), length), dtype=torch.long)
        mask = torch.zeros((len(chunk), length), dtype=torch.long)
        targets = torch.full((len(chunk), length), IGNORE_INDEX, dtype=torch.long)
        for r, i in enumerate(chunk):
            sample, scored = data.sample(i)
            n = len(sample)
            ids[r, :n] = torch.from_numpy(sample.astype(np.int64))
            mask[r, :n] = 1
            targets[r, : n - 1] = torch.from_numpy(np.where(scored[1:], sample[1:], IGNORE_INDEX).astype(np.int64))
        inputs = {"input_ids": ids, "attention_mask": mask, "use_cache": False}
        out.append((inputs, targets, int(mask.sum())))
    return out


def packed_batches(
    data: TokenizedData, max_seq_len: int, rows_per_batch: int, layout: str = "flat", seed: int = 0
) -> list[Batch]:
    rows = pack_best_fit(data.lengths.tolist(), max_seq_len)
    random.Random(seed).shuffle(rows)
    return [collate(data, rows[i : i + rows_per_batch], layout, 0) for i in range(0, len(rows), rows_per_batch)]


def run_round(model: torch.nn.Module, batches: list[tuple[dict, torch.Tensor, int]]) -> float:
    """One epoch of forward + backward; returns real tokens per second."""
    real = 0
    started = time.perf_counter()
    for inputs, targets, tokens in batches:
        loss = token_loss_sum(model(**inputs).logits, targets)
        loss.backward()
        real += tokens
    model.zero_grad(set_to_none=True)
    return real / (time.perf_counter() - started)


def build_model(folder: Path) -> None:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=VOCAB,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
    )
    Qwen2ForCausalLM(config).save_pretrained(folder)


def load_model(folder: Path, attn_implementation: str) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation=attn_implementation)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--samples", type=int, default=192)
    parser.add_argument("--max-seq-len", type=int, default=1024)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--padded-batch", type=int, default=8)
    parser.add_argument("--packed-rows", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)

    lengths = long_tail_lengths(args.data, args.samples, args.max_seq_len)
    data = synthetic_data(lengths)
    packed = packed_batches(data, args.max_seq_len, args.packed_rows)
    packed_work = [(b.model_inputs(), b.targets, b.num_tokens) for b in packed]
    masked_rows = [
        (b.model_inputs(), b.targets, b.num_tokens)
        for b in packed_batches(data, args.max_seq_len, args.packed_rows, layout="rows")
    ]
    per_sample = [
        (b.model_inputs(), b.targets, b.num_tokens) for b in (collate(data, [[i]], "rows", 0) for i in range(len(data)))
    ]
    padded = padded_batches(data, args.padded_batch)
    packed_fraction = real_token_fraction(packed)
    padded_fraction = sum(t for _, _, t in padded) / sum(int(i["input_ids"].numel()) for i, _, _ in padded)
    packed_rows = len(pack_best_fit(lengths, args.max_seq_len))
    print(
        f"workload: {len(lengths)} samples, {sum(lengths)} tokens, lengths median {int(np.median(lengths))}, "
        f"p90 {int(np.percentile(lengths, 90))}, max {max(lengths)}; packed into {packed_rows} rows of "
        f"{args.max_seq_len} (fill {sum(lengths) / (packed_rows * args.max_seq_len):.3f}); padded in batches of "
        f"{args.padded_batch}"
    )

    with tempfile.TemporaryDirectory() as folder:
        build_model(Path(folder))
        project = load_model(Path(folder), register_varlen_sdpa()).train()
        reference = load_model(Path(folder), "sdpa").train()
        run_round(project, packed_work)  # warm-up
        run_round(reference, padded)
        ratios, packed_speed, padded_speed = [], [], []
        for pair in range(args.pairs):
            a = run_round(project, packed_work)
            b = run_round(reference, padded)
            packed_speed.append(a)
            padded_speed.append(b)
            ratios.append(a / b)
            print(f"pair {pair + 1}: packed {a:,.0f} tok/s, padded {b:,.0f} tok/s, ratio {a / b:.2f}")
        others: dict[str, list[float]] = {"mask": [], "per_sample": []}
        for _ in range(3):
            speed = run_round(project, packed_work)
            others["mask"].append(speed / run_round(reference, masked_rows))
            others["per_sample"].append(speed / run_round(reference, per_sample))
    print(
        f"packed flat varlen-sdpa vs packed rows with block-diagonal mask: {statistics.median(others['mask']):.2f}x, "
        f"vs one forward per sample: {statistics.median(others['per_sample']):.2f}x"
    )
    print(
        f"packed {statistics.median(packed_speed):,.0f} tok/s, padded {statistics.median(padded_speed):,.0f} tok/s "
        f"(medians of {args.pairs} pairs)"
    )
    print(
        f"packed/padded real-token fraction: {packed_fraction:.3f} vs {padded_fraction:.3f}, "
        f"tokens-per-second ratio: {statistics.median(ratios):.2f}"
    )


if __name__ == "__main__":
    main()
