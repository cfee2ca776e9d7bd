"""The toy tokenizer: byte-level BPE that survives a reload as Qwen2Tokenizer, ChatML, and chats that fit the budget."""

from __future__ import annotations

from pathlib import Path

import pytest

from limo_ray.config import LIMO_SYSTEM_PROMPT
from limo_ray.toy.chains import reference_chain
from limo_ray.toy.models import qwen2_config
from limo_ray.toy.problems import generate_toy_problems
from limo_ray.toy.spec import TOY_SPECS
from limo_ray.toy.tokenizer import (
    IM_END,
    SPECIAL_TOKENS,
    build_tokenizer,
    load_tokenizer,
    render_chat,
    tokenizer_problems,
    train_bpe,
)

# The chat budget of the tiny preset: max_tokens 200 for a completion, max_model_len 512 for the whole chat.
CHAT_BUDGET = 200
COMPLETION_BUDGET = 160


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    problems = generate_toy_problems(1500, seed=4, unique=False)
    return [
        render_chat(LIMO_SYSTEM_PROMPT, p.text, reference_chain(p, q, i))
        for i, p in enumerate(problems)
        for q in (1, 3, 5)
    ]


@pytest.fixture(scope="module")
def model_folder(corpus: list[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder laid out like a model: tokenizer files plus a config.json that says qwen2."""
    folder = tmp_path_factory.mktemp("toy-tokenizer")
    vocab, merges = train_bpe(corpus, 1024)
    build_tokenizer(vocab, merges).save_pretrained(str(folder))
    qwen2_config(TOY_SPECS["test"].weak, load_tokenizer(folder)).save_pretrained(str(folder))
    return folder


def test_reload_is_qwen2_and_round_trips_ids_spaces_and_newlines(corpus: list[str], model_folder: Path) -> None:
    tok = load_tokenizer(model_folder)
    assert type(tok).__name__ == "Qwen2Tokenizer"
    assert tokenizer_problems(tok, corpus[:600]) == []
    text = "Step 1: 12 + 4 = 16.\nStep 2:  16 * 3 = 48.\n\nThe answer is \\boxed{48}."
    ids = tok.encode(text, add_special_tokens=False)
    assert tok.decode(ids) == text
    assert tok.encode(tok.decode(ids), add_special_tokens=False) == ids
    # Digits are single tokens (Qwen's split regex), so numbers are spelled digit by digit.
    assert [tok.decode([i]) for i in tok.encode("1234", add_special_tokens=False)] == ["1", "2", "3", "4"]


def test_specials_are_single_ids_and_eos_is_im_end(model_folder: Path) -> None:
    tok = load_tokenizer(model_folder)
    ids = [tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS]
    assert ids == [0, 1, 2]
    assert tok.eos_token == IM_END and tok.eos_token_id == 2
    assert tok.pad_token_id == 0
    assert len(tok.encode(LIMO_SYSTEM_PROMPT, add_special_tokens=False)) == 1
    assert len(tok.encode("Reason briefly.", add_special_tokens=False)) > 1  # other prompts tokenize normally


def test_chat_template_defaults_to_the_paper_system_prompt(model_folder: Path) -> None:
    tok = load_tokenizer(model_folder)
    user = [{"role": "user", "content": "What is 2 + 3?"}]
    rendered = tok.apply_chat_template(user, add_generation_prompt=True, tokenize=False)
    assert rendered == render_chat(LIMO_SYSTEM_PROMPT, "What is 2 + 3?")
    explicit = [{"role": "system", "content": "Be brief."}, *user]
    assert tok.apply_chat_template(explicit, add_generation_prompt=True, tokenize=False) == render_chat(
        "Be brief.", "What is 2 + 3?"
    )
    ids = tok.apply_chat_template(user, add_generation_prompt=True, return_dict=True)["input_ids"]
    assert ids == tok.encode(rendered, add_special_tokens=False)
    assert tok.decode(ids) == rendered


def test_every_l5_chat_fits_the_token_budget(model_folder: Path, report) -> None:
    tok = load_tokenizer(model_folder)
    problems = generate_toy_problems(2000, seed=8)
    chains = [reference_chain(p, 5, i) for i, p in enumerate(problems)]
    chats = [render_chat(LIMO_SYSTEM_PROMPT, p.text, c) for p, c in zip(problems, chains, strict=True)]
    chat_lengths = [len(ids) for ids in tok(chats, add_special_tokens=False)["input_ids"]]
    chain_lengths = [len(ids) + 1 for ids in tok(chains, add_special_tokens=False)["input_ids"]]  # + <|im_end|>
    report(f"L5 chats: mean {sum(chat_lengths) / len(chat_lengths):.0f} tokens, max {max(chat_lengths)}")
    assert max(chat_lengths) <= CHAT_BUDGET
    assert max(chain_lengths) <= COMPLETION_BUDGET
