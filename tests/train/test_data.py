"""Chat templating, label masking and truncation: the per-row logic, without Ray."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from limo_ray.config import LIMO_SYSTEM_PROMPT
from limo_ray.train.data import (
    IGNORE_INDEX,
    TokenizedData,
    apply_truncation,
    encode_sample,
    load_tokenizer,
    tokenize_row,
)
from tests.fixtures import limo_rows


@pytest.fixture(scope="module")
def tokenizer(tiny_model: Path):
    return load_tokenizer(str(tiny_model))


def test_labels_cover_exactly_the_response_and_its_end_of_turn(tokenizer) -> None:
    row = limo_rows(1, seed=5)[0]
    ids, labels = encode_sample(tokenizer, LIMO_SYSTEM_PROMPT, row["problem"], row["response"])
    labelled = [t for t, label in zip(ids, labels, strict=True) if label != IGNORE_INDEX]
    assert tokenizer.decode(labelled) == row["response"] + "<|im_end|>"
    assert [label for label in labels if label != IGNORE_INDEX] == labelled
    # The prompt is tokenised alone, as the engine does at inference, and nothing in it is trained.
    prompt = tokenizer.apply_chat_template(
        [{"role": "system", "content": LIMO_SYSTEM_PROMPT}, {"role": "user", "content": row["problem"]}],
        tokenize=False,
        add_generation_prompt=True,
    )
    prompt_ids = tokenizer.encode(prompt, add_special_tokens=False)
    assert ids[: len(prompt_ids)] == prompt_ids
    assert all(label == IGNORE_INDEX for label in labels[: len(prompt_ids)])
    # After <|im_end|> the template's newline closes the turn: in the input, not trained.
    assert tokenizer.decode(ids[len(prompt_ids) + len(labelled) :]) == "\n"


def test_the_configured_system_prompt_is_rendered_and_a_differing_row_is_counted(tokenizer) -> None:
    row = {**limo_rows(1, seed=6)[0], "system": "Answer briefly."}
    out = tokenize_row(tokenizer, row, LIMO_SYSTEM_PROMPT, 512, "drop")
    assert LIMO_SYSTEM_PROMPT in tokenizer.decode(out["input_ids"])
    assert "Answer briefly." not in tokenizer.decode(out["input_ids"])
    assert out["system_differs"] is True


def test_truncation_policy_drops_or_cuts_and_counts(tokenizer) -> None:
    rows = limo_rows(12, seed=7)
    lengths = [len(encode_sample(tokenizer, LIMO_SYSTEM_PROMPT, r["problem"], r["response"])[0]) for r in rows]
    limit = int(np.median(lengths))
    longer = sum(n > limit for n in lengths)
    assert 0 < longer < len(rows)

    dropped = TokenizedData.from_rows([tokenize_row(tokenizer, r, LIMO_SYSTEM_PROMPT, limit, "drop") for r in rows])
    assert (dropped.stats.rows_dropped, dropped.stats.rows_kept) == (longer, len(rows) - longer)
    assert dropped.lengths.max() <= limit

    cut = TokenizedData.from_rows([tokenize_row(tokenizer, r, LIMO_SYSTEM_PROMPT, limit, "truncate") for r in rows])
    assert (cut.stats.rows_truncated, cut.stats.rows_dropped, cut.stats.rows_kept) == (longer, 0, len(rows))
    assert cut.lengths.max() == limit
    assert cut.stats.longest == max(lengths)


def test_a_cut_that_leaves_no_response_token_drops_the_sample() -> None:
    ids, labels = list(range(10)), [IGNORE_INDEX] * 6 + [6, 7, 8, 9]
    assert apply_truncation(ids, labels, 6, "truncate")[2] == "dropped"
    assert apply_truncation(ids, labels, 7, "truncate") == (ids[:7], labels[:7], "truncated")
    assert apply_truncation(ids, labels, 10, "drop") == (ids, labels, "ok")


def test_tokenized_data_keeps_samples_contiguous_with_their_masks(tokenizer) -> None:
    rows = [tokenize_row(tokenizer, r, LIMO_SYSTEM_PROMPT, 512, "drop") for r in limo_rows(5, seed=8)]
    data = TokenizedData.from_rows(rows)
    for i, row in enumerate(rows):
        ids, mask = data.sample(i)
        assert ids.tolist() == row["input_ids"].tolist()
        assert mask.tolist() == (row["labels"] != IGNORE_INDEX).tolist()
    assert data.stats.label_tokens == sum(int((r["labels"] != IGNORE_INDEX).sum()) for r in rows)
