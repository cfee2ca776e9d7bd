"""The toy tokenizer: a small byte-level BPE trained locally on the toy corpus, saved the way Qwen2 ships its own.

Why byte-level and Qwen's exact pre-tokenizer: with transformers 5.x a tokenizer in a folder whose config.json
says `qwen2` reloads as `Qwen2Tokenizer`, which rebuilds its pre-tokenizer (Qwen's split regex + ByteLevel) and
decoder from vocab + merges. A vocabulary trained any other way would then silently lose spaces and newlines
in transformers and vLLM alike. So the trainer here uses that very normalizer / pre-tokenizer / decoder, the
vocabulary starts from the 256-symbol byte-level alphabet, and what is saved is a real `Qwen2Tokenizer`. Qwen's
regex splits digits one by one, so every number is spelled digit by digit: the toy models can learn arithmetic
on digits instead of memorising number tokens.

The chat template is Qwen's ChatML, with the paper's system prompt as the default system message; that prompt is
also one added (non-special) token, as the prototype had it: it opens every chat, and ~19 BPE tokens of it would
cost the tiny models a fifth of their training compute. Any other system prompt is tokenized normally.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers
from tokenizers.models import BPE
from tokenizers.trainers import BpeTrainer

from limo_ray.config import LIMO_SYSTEM_PROMPT

ENDOFTEXT, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS: tuple[str, ...] = (ENDOFTEXT, IM_START, IM_END)


def chat_template(default_system: str = LIMO_SYSTEM_PROMPT) -> str:
    """Qwen-style ChatML; a conversation without a system message gets `default_system`."""
    system = json.dumps(default_system)  # a valid Jinja string literal (Jinja reads JSON-style escapes)
    return (
        "{%- if messages and messages[0]['role'] == 'system' -%}"
        "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' -}}"
        "{%- else -%}"
        "{{- '<|im_start|>system\\n' + " + system + " + '<|im_end|>\\n' -}}"
        "{%- endif -%}"
        "{%- for message in messages -%}"
        "{%- if not (loop.first and message['role'] == 'system') -%}"
        "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' -}}"
        "{%- endif -%}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
    )


def render_chat(system: str, problem: str, response: str | None = None) -> str:
    """The text `chat_template()` renders, without Jinja: for corpus building and tests."""
    text = f"{IM_START}system\n{system}{IM_END}\n{IM_START}user\n{problem}{IM_END}\n{IM_START}assistant\n"
    return text if response is None else f"{text}{response}{IM_END}\n"


def _qwen2_pipeline(tokenizer: Tokenizer) -> Tokenizer:
    # Qwen2Tokenizer's own split regex, so what is trained here is what a reload rebuilds.
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def train_bpe(texts: Iterable[str], vocab_size: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Train a byte-level BPE with Qwen2's pipeline; returns (vocab, merges). Specials take ids 0, 1, 2."""
    tokenizer = _qwen2_pipeline(Tokenizer(BPE(unk_token=None, fuse_unk=False, byte_fallback=False)))
    trainer = BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
        min_frequency=2,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    state = json.loads(tokenizer.to_str())["model"]
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in state["merges"]]
    return dict(state["vocab"]), merges  # type: ignore[return-value]


def build_tokenizer(vocab: dict[str, int], merges: list[tuple[str, str]], model_max_length: int = 512) -> Any:
    """A transformers `Qwen2Tokenizer` over the trained vocab, with ChatML and `<|im_end|>` as eos."""
    from transformers import Qwen2Tokenizer

    tok = Qwen2Tokenizer(
        vocab=dict(vocab),
        merges=[tuple(m) for m in merges],
        unk_token=None,
        eos_token=IM_END,
        pad_token=ENDOFTEXT,
        model_max_length=model_max_length,
        additional_special_tokens=[IM_START, IM_END],
    )
    # The system prompt opens every chat: as one token it costs the tiny models one position instead of ~19.
    tok.add_tokens([AddedToken(LIMO_SYSTEM_PROMPT, special=False, normalized=False)])
    tok.chat_template = chat_template()
    return tok


def save_tokenizer(tokenizer: Any, folder: str | Path) -> None:
    tokenizer.save_pretrained(str(folder))


def load_tokenizer(folder: str | Path) -> Any:
    """The tokenizer exactly as transformers (and vLLM) will load it from a model folder."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder))


def tokenizer_problems(tokenizer: Any, samples: Iterable[str]) -> list[str]:
    """Everything wrong with a (reloaded) tokenizer on `samples`: lost text, wrong specials, missing template."""
    problems = []
    for name in SPECIAL_TOKENS:
        ids = tokenizer.encode(name, add_special_tokens=False)
        if len(ids) != 1:
            problems.append(f"special token {name} encodes to {ids}, not one id")
    if tokenizer.eos_token != IM_END:
        problems.append(f"eos_token is {tokenizer.eos_token!r}, not {IM_END}")
    if not tokenizer.chat_template:
        problems.append("no chat template")
    for text in samples:
        ids = tokenizer.encode(text, add_special_tokens=False)
        back = tokenizer.decode(ids, skip_special_tokens=False)
        if back != text:
            problems.append(f"round trip changed {text[:60]!r} into {back[:60]!r}")
        elif tokenizer.encode(back, add_special_tokens=False) != ids:
            problems.append(f"ids of {text[:60]!r} change on a second encode")
    return problems
