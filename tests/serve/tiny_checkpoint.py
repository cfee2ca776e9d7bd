"""A throwaway tiny Qwen2 checkpoint (random weights) for plumbing tests of the Serve app.

Stands in for the toy world's models until `limo_ray.toy` exposes its build: a byte-level BPE trained on the
byte-level alphabet and saved as `Qwen2Tokenizer` beside a `qwen2` config.json (STACK_NOTES: the tokenizer
pitfall), Qwen's ChatML template, hidden size 64, 2 layers. Built in about a second. Random weights are enough
here: these tests check the HTTP surface, queueing and bookkeeping, not answers.
"""

from __future__ import annotations

import json
from pathlib import Path

IM_START, IM_END, ENDOFTEXT = "<|im_start|>", "<|im_end|>", "<|endoftext|>"
# Qwen2's split regex, so the trained BPE matches what Qwen2Tokenizer rebuilds on reload.
QWEN2_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)
CORPUS = [
    "Please reason step by step, and put your final answer within \\boxed{}.",
    "What is 2 + 3? We add 2 and 3 to get 5. So the answer is \\boxed{5}.",
    "Solve for x: 2x + 4 = 10. Subtract 4: 2x = 6. Divide by 2: x = 3. The answer is \\boxed{3}.",
    "How many ways are there to choose 2 of 4 items? C(4, 2) = 6, so \\boxed{6}.",
]


def build_tiny_checkpoint(folder: Path, seed: int = 0) -> Path:
    """Save a random tiny Qwen2 (bf16-servable) with tokenizer and chat template into `folder`."""
    import torch
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import BPE
    from tokenizers.trainers import BpeTrainer
    from transformers import AutoTokenizer, GenerationConfig, Qwen2Config, Qwen2ForCausalLM, Qwen2Tokenizer

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
        vocab_size=400,
        special_tokens=[ENDOFTEXT, IM_START, IM_END],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(CORPUS * 50, trainer=trainer)
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
        vocab_size=vocab + (-vocab % 64),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.convert_tokens_to_ids(ENDOFTEXT),
        eos_token_id=tokenizer.convert_tokens_to_ids(IM_END),
        pad_token_id=tokenizer.convert_tokens_to_ids(ENDOFTEXT),
    )
    folder.mkdir(parents=True, exist_ok=True)
    Qwen2ForCausalLM(config).save_pretrained(folder)  # first: the tokenizer must sit beside a qwen2 config.json
    tokenizer.save_pretrained(folder)
    GenerationConfig(eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id).save_pretrained(folder)
    reloaded = AutoTokenizer.from_pretrained(folder)
    assert reloaded.decode(reloaded.encode(CORPUS[1], add_special_tokens=False)) == CORPUS[1], "tokenizer round trip"
    return folder
