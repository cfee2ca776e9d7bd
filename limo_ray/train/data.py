"""SFT data: LIMO rows -> chat-templated token ids with labels on the assistant response only, as a Ray Data step.

Per row (a plain function, `encode_sample`): the model's own chat template renders system prompt + problem +
response; the labels are -100 everywhere except the response tokens and the end-of-turn token that closes them
(`<|im_end|>` for Qwen), so the model learns to answer and to stop, never to write the prompt. The prompt is
tokenised on its own, exactly as the engine will tokenise it at inference, and the response after it.

Rows longer than `max_seq_len` are dropped or truncated (`TrainConfig.truncation`); either way they are
counted in `TokenStats`, which ends up in the train manifest. A truncated row with no response token left is
dropped: it would teach nothing.

The tokenised set travels to the training workers as one compact `TokenizedData` (flat int32 ids + a label
mask + offsets) through the object store: every rank needs all of it to build the same packing plan.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from limo_ray.errors import LimoError

if TYPE_CHECKING:
    import ray.data

IGNORE_INDEX = -100
Truncation = Literal["drop", "truncate"]
Status = Literal["ok", "truncated", "dropped"]


def load_tokenizer(model_path: str, trust_remote_code: bool = False) -> Any:
    """The tokenizer exactly as transformers (and vLLM) load it from the model folder or hub name."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_path, trust_remote_code=trust_remote_code)


def chat(system: str | None, problem: str, response: str | None = None) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": problem})
    if response is not None:
        messages.append({"role": "assistant", "content": response})
    return messages


def _encode(tokenizer: Any, text: str) -> list[int]:
    # The template already wrote every special token as text; a BOS added here would appear twice.
    return list(tokenizer.encode(text, add_special_tokens=False))


def encode_sample(
    tokenizer: Any, system: str | None, problem: str, response: str, chat_template: str | None = None
) -> tuple[list[int], list[int]]:
    """(input_ids, labels) for one sample; labels are IGNORE_INDEX outside the response and its end-of-turn."""
    prompt_text = tokenizer.apply_chat_template(
        chat(system, problem), tokenize=False, add_generation_prompt=True, chat_template=chat_template
    )
    full_text = tokenizer.apply_chat_template(
        chat(system, problem, response), tokenize=False, chat_template=chat_template
    )
    if not full_text.startswith(prompt_text):
        raise LimoError(
            "the chat template renders the prompt differently with and without the answer, so the response "
            "cannot be located for label masking: use a template whose generation prompt is a prefix of the "
            "full conversation (prompt.chat_template)"
        )
    completion = full_text[len(prompt_text) :]
    at = completion.find(response)
    if at < 0:
        raise LimoError("the chat template rewrites the assistant response (e.g. strips a section): cannot mask it")
    # Anything the template puts before the response (e.g. an opening think tag) is part of what the model writes.
    answer_ids = _encode(tokenizer, completion[: at + len(response)])
    tail_ids = _encode(tokenizer, completion[at + len(response) :])
    special = set(tokenizer.all_special_ids)
    closing = next((i + 1 for i, tid in enumerate(tail_ids) if tid in special), len(tail_ids))
    prompt_ids = _encode(tokenizer, prompt_text)
    input_ids = prompt_ids + answer_ids + tail_ids
    labels = (
        [IGNORE_INDEX] * len(prompt_ids) + answer_ids + tail_ids[:closing] + [IGNORE_INDEX] * (len(tail_ids) - closing)
    )
    return input_ids, labels


def apply_truncation(
    input_ids: list[int], labels: list[int], max_seq_len: int, policy: Truncation
) -> tuple[list[int], list[int], Status]:
    """Enforce `max_seq_len`: drop the sample, or cut its end; a cut that leaves no label token drops it."""
    if len(input_ids) <= max_seq_len:
        return input_ids, labels, "ok"
    if policy == "drop":
        return [], [], "dropped"
    labels = labels[:max_seq_len]
    if all(label == IGNORE_INDEX for label in labels):
        return [], [], "dropped"
    return input_ids[:max_seq_len], labels, "truncated"


def tokenize_row(
    tokenizer: Any,
    row: Mapping[str, Any],
    system_prompt: str,
    max_seq_len: int,
    truncation: Truncation,
    chat_template: str | None = None,
) -> dict[str, Any]:
    """One LIMO row -> `id, input_ids, labels, num_tokens (before truncation), status, system_differs`.

    The configured system prompt is used for every row (train and eval must see the same one); a row that
    carries another is counted, not obeyed.
    """
    ids, labels = encode_sample(tokenizer, system_prompt, str(row["problem"]), str(row["response"]), chat_template)
    full_length = len(ids)
    ids, labels, status = apply_truncation(ids, labels, max_seq_len, truncation)
    system = row.get("system")
    return {
        "id": str(row["id"]),
        "input_ids": np.asarray(ids, dtype=np.int32),
        "labels": np.asarray(labels, dtype=np.int32),
        "num_tokens": full_length,
        "status": status,
        "system_differs": bool(system) and str(system) != system_prompt,
    }


@dataclass(frozen=True)
class TokenizeSettings:
    """How rows become token ids: the tokenizer (the base model's), the prompt, the length limit."""

    model_path: str
    system_prompt: str
    max_seq_len: int
    truncation: Truncation
    chat_template: str | None = None
    trust_remote_code: bool = False


class Tokenize:
    """Ray Data `map_batches` class around `tokenize_row`: the tokenizer loads once per actor."""

    def __init__(self, settings: TokenizeSettings) -> None:
        self.tokenizer = load_tokenizer(settings.model_path, settings.trust_remote_code)
        self.options = {
            "system_prompt": settings.system_prompt,
            "max_seq_len": settings.max_seq_len,
            "truncation": settings.truncation,
            "chat_template": settings.chat_template,
        }

    def __call__(self, batch: Mapping[str, Sequence[Any]]) -> dict[str, list[Any]]:
        size = len(batch["id"])
        rows = [tokenize_row(self.tokenizer, {k: v[i] for k, v in batch.items()}, **self.options) for i in range(size)]
        return {key: [r[key] for r in rows] for key in rows[0]} if rows else {}


@dataclass
class TokenStats:
    """What tokenisation did to the dataset: reported in the train manifest and by `limo train`."""

    rows_in: int = 0
    rows_kept: int = 0
    rows_truncated: int = 0
    rows_dropped: int = 0
    tokens: int = 0  # after truncation, kept rows only
    label_tokens: int = 0
    longest: int = 0  # before truncation
    max_seq_len: int = 0
    truncation: str = "drop"
    system_prompt_differs: int = 0  # rows whose own `system` is not the configured prompt (the config's is used)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TokenizedData:
    """All kept samples, flat: sample i is `input_ids[offsets[i]:offsets[i+1]]`; `label_mask` marks trained tokens."""

    ids: list[str]
    input_ids: np.ndarray  # int32, all samples concatenated
    label_mask: np.ndarray  # bool, same length
    offsets: np.ndarray  # int64, len(ids) + 1
    stats: TokenStats = field(default_factory=TokenStats)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def sample(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
        return self.input_ids[lo:hi], self.label_mask[lo:hi]

    @classmethod
    def from_rows(cls, rows: Sequence[Mapping[str, Any]], stats: TokenStats | None = None) -> TokenizedData:
        """Keep the rows whose status is not `dropped`, in the given order, and fill in the stats."""
        stats = stats or TokenStats()
        kept = [r for r in rows if r["status"] != "dropped"]
        lengths = np.asarray([len(r["input_ids"]) for r in kept], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        empty = np.zeros(0, dtype=np.int32)
        input_ids = np.concatenate([np.asarray(r["input_ids"], dtype=np.int32) for r in kept] or [empty])
        label_mask = np.concatenate([np.asarray(r["labels"]) != IGNORE_INDEX for r in kept] or [empty.astype(bool)])
        stats.rows_in = len(rows)
        stats.rows_kept = len(kept)
        stats.rows_truncated = sum(r["status"] == "truncated" for r in rows)
        stats.rows_dropped = len(rows) - len(kept)
        stats.tokens = int(lengths.sum())
        stats.label_tokens = int(label_mask.sum())
        stats.longest = max((int(r["num_tokens"]) for r in rows), default=0)
        return cls([str(r["id"]) for r in kept], input_ids, label_mask, offsets, stats)


def read_dataset(path: str | Path) -> ray.data.Dataset:
    """A LIMO-format dataset (`curate/dataset.jsonl` or `.parquet`, or any file with those columns) as Ray Data."""
    import ray.data

    text = str(path)
    columns = ["id", "system", "problem", "response"]
    if text.endswith(".parquet"):
        ds = ray.data.read_parquet(text, columns=columns)
    elif text.endswith((".jsonl", ".json", ".jsonl.gz", ".json.gz")):
        ds = ray.data.read_json(text).select_columns(columns)
    else:
        raise LimoError(f"{path}: a training dataset must be .jsonl, .json or .parquet with {', '.join(columns)}")
    return ds


def tokenize_dataset(
    ds: ray.data.Dataset, settings: TokenizeSettings, num_cpus: float = 1.0, batch_size: int = 64
) -> TokenizedData:
    """Tokenise with one Ray Data actor (the tokenizer loads once), then gather into `TokenizedData`.

    The row order is the dataset's (`preserve_order`), so the packing plan, and with it a resumed run, is the
    same on every re-run.
    """
    from ray.data import ActorPoolStrategy, DataContext

    context = DataContext.get_current()
    kept_order = context.execution_options.preserve_order
    context.execution_options.preserve_order = True
    try:
        rows = ds.map_batches(
            Tokenize,
            fn_constructor_args=(settings,),
            batch_size=batch_size,
            compute=ActorPoolStrategy(size=1),
            num_cpus=num_cpus,
        ).take_all()
    finally:
        context.execution_options.preserve_order = kept_order
    max_seq_len = settings.max_seq_len
    stats = TokenStats(
        max_seq_len=max_seq_len,
        truncation=settings.truncation,
        system_prompt_differs=sum(bool(r["system_differs"]) for r in rows),
    )
    data = TokenizedData.from_rows(rows, stats)
    if len(data) == 0:
        raise LimoError(
            f"no training sample fits max_seq_len={max_seq_len} ({stats.rows_in} rows, {stats.rows_dropped} dropped): "
            "raise train.max_seq_len or set train.truncation=truncate"
        )
    return data
