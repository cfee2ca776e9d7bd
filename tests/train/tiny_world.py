"""A test-size stand-in for the toy world: a tiny Qwen2 checkpoint with a Qwen-style tokenizer, and LIMO rows.

Built in well under a second so unit tests need no cached toy build. The tokenizer is a byte-level BPE trained
on the byte-level alphabet and saved as a `Qwen2Tokenizer` next to a `qwen2` config.json, so that it reloads
through `AutoTokenizer` exactly as it was trained (STACK_NOTES: the tokenizer pitfall). Responses end in
`\\boxed{N}` and vary in length (a few to a few dozen steps), so packing has something to pack.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from limo_ray.config import LIMO_SYSTEM_PROMPT

IM_START, IM_END, ENDOFTEXT = "<|im_start|>", "<|im_end|>", "<|endoftext|>"
# Qwen2's split regex (transformers' tokenization_qwen2), so that training the BPE matches its reload.
QWEN2_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

# Qwen's ChatML; a conversation without a system message gets the paper's system prompt.
CHAT_TEMPLATE = (
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' -}}"
    "{%- else -%}"
    "{{- '<|im_start|>system\\n' + " + json.dumps(LIMO_SYSTEM_PROMPT) + " + '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- for message in messages -%}"
    "{%- if not (loop.first and message['role'] == 'system') -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)


def limo_rows(count: int, seed: int = 0, max_steps: int = 12) -> list[dict[str, Any]]:
    """LIMO-format samples (`id, system, problem, response, answer, provenance`): sums done step by step."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        terms = [rng.randint(1, 60) for _ in range(rng.randint(2, max_steps))]
        total, lines = 0, []
        for term in terms:
            lines.append(f"Add {term}: {total} + {term} = {total + term}.")
            total += term
        problem = "What is " + " + ".join(map(str, terms)) + "?"
        response = "Let us add the terms one by one.\n" + "\n".join(lines) + f"\nSo the answer is \\boxed{{{total}}}."
        rows.append(
            {
                "id": f"sum-{seed}-{i}",
                "system": LIMO_SYSTEM_PROMPT,
                "problem": problem,
                "response": response,
                "answer": str(total),
                "provenance": {"source": "tests/train/tiny_world.py", "seed": seed},
            }
        )
    return rows


def write_jsonl(rows: list[dict[str, Any]], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def build_tiny_model(folder: Path, seed: int = 0, hidden_size: int = 64, num_layers: int = 2) -> Path:
    """Save a randomly initialised tiny Qwen2 (fp32) with its tokenizer and chat template into `folder`."""
    import torch
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import BPE
    from tokenizers.trainers import BpeTrainer
    from transformers import AutoTokenizer, GenerationConfig, Qwen2Config, Qwen2ForCausalLM, Qwen2Tokenizer

    corpus = [f"{r['problem']}\n{r['response']}\n{LIMO_SYSTEM_PROMPT}" for r in limo_rows(200, seed=seed + 1)]
    bpe = Tokenizer(BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = BpeTrainer(
        vocab_size=420,
        special_tokens=[ENDOFTEXT, IM_START, IM_END],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(corpus, trainer=trainer)
    state = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in state["merges"]]
    tokenizer = Qwen2Tokenizer(
        vocab=dict(state["vocab"]),
        merges=merges,
        unk_token=None,
        eos_token=IM_END,
        pad_token=ENDOFTEXT,
        model_max_length=512,
        additional_special_tokens=[IM_START, IM_END],
    )
    tokenizer.chat_template = CHAT_TEMPLATE

    torch.manual_seed(seed)
    vocab = len(tokenizer)
    config = Qwen2Config(
        vocab_size=vocab + (-vocab % 64),  # padded like real checkpoints: rows past the tokenizer exist
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.convert_tokens_to_ids(ENDOFTEXT),
        eos_token_id=tokenizer.convert_tokens_to_ids(IM_END),
        pad_token_id=tokenizer.convert_tokens_to_ids(ENDOFTEXT),
    )
    model = Qwen2ForCausalLM(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)  # first: the tokenizer must be saved beside a qwen2 config.json
    tokenizer.save_pretrained(folder)
    GenerationConfig(eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id).save_pretrained(folder)
    reloaded = AutoTokenizer.from_pretrained(folder)
    sample = limo_rows(1, seed=seed)[0]["response"]
    assert reloaded.decode(reloaded.encode(sample, add_special_tokens=False)) == sample, "tokenizer round trip"
    return folder
