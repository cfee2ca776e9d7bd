"""The official `openai` SDK, sync and async, against the Serve app (tests/serve/conftest.py: tiny random model).

Each OpenAI parameter is exercised by name and its effect checked in the answer (counts, lengths, logprob values,
echoed text, usage sums), as a real client (a chat UI, lm-evaluation-harness's `local-completions`) would rely
on: the endpoint must answer what vLLM's own OpenAI server answers. Then the refusals a client must be able to
tell apart: wrong model (404), prompt past the context (400 with the reason), bad key (401), full queue (503 +
Retry-After). The model's weights are random, so its text means nothing; every token costs, so answers are short.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from typing import TYPE_CHECKING, Any

import openai
import pytest

if TYPE_CHECKING:
    from tests.serve.conftest import TinyServer

pytestmark = pytest.mark.integration

CHAT = [{"role": "system", "content": "Reason step by step."}, {"role": "user", "content": "What is 2 + 3?"}]
PROMPT = "What is 2 + 3?"
EXACT = {"ignore_eos": True}  # vLLM's extra: generate exactly max_tokens, so token counts are known


@pytest.fixture(scope="module")
def client(tiny_server: TinyServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=tiny_server.openai_base_url, api_key=tiny_server.key, max_retries=0, timeout=120)


def _async_client(server: TinyServer, key: str | None = None) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.openai_base_url, api_key=key or server.key, max_retries=0, timeout=300)


def _usage_adds_up(usage: Any, completion_tokens: int | None = None) -> None:
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens > 0
    if completion_tokens is not None:
        assert usage.completion_tokens == completion_tokens


# ----------------------------------------------------------------------------------------------- chat, sync


def test_chat_n_temperature_top_p_max_tokens_and_user(client: openai.OpenAI, tiny_server: TinyServer) -> None:
    chat = client.chat.completions.create(
        model=tiny_server.model,
        messages=CHAT,  # type: ignore[arg-type]
        n=3,
        temperature=1.0,
        top_p=0.9,
        max_tokens=5,
        user="evaluator-1",
        extra_body=EXACT,
    )
    assert chat.model == tiny_server.model and chat.object == "chat.completion"
    assert sorted(c.index for c in chat.choices) == [0, 1, 2]
    assert all(c.finish_reason == "length" and c.message.role == "assistant" for c in chat.choices)
    _usage_adds_up(chat.usage, completion_tokens=3 * 5)


def test_chat_max_completion_tokens_bounds_the_answer(client: openai.OpenAI, tiny_server: TinyServer) -> None:
    chat = client.chat.completions.create(
        model=tiny_server.model,
        messages=CHAT,
        max_completion_tokens=4,
        temperature=1.0,
        extra_body=EXACT,  # type: ignore[arg-type]
    )
    assert chat.choices[0].finish_reason == "length"
    _usage_adds_up(chat.usage, completion_tokens=4)


def test_chat_logprobs_and_top_logprobs_have_vllms_shape(client: openai.OpenAI, tiny_server: TinyServer) -> None:
    """Greedy: the chosen token is the most likely one, so its logprob heads its own top list. (vLLM takes n=1
    only when greedy; sampled n>1 with logprobs is in the async test.)"""
    chat = client.chat.completions.create(
        model=tiny_server.model,
        messages=CHAT,  # type: ignore[arg-type]
        temperature=0.0,
        max_tokens=4,
        logprobs=True,
        top_logprobs=3,
        extra_body=EXACT,
    )
    assert len(chat.choices) == 1
    for choice in chat.choices:
        assert choice.logprobs is not None and choice.logprobs.content is not None
        entries = choice.logprobs.content
        assert len(entries) == 4  # one per generated token
        for entry in entries:
            assert entry.logprob <= 0 and math.isfinite(entry.logprob)
            assert entry.bytes == list(entry.token.encode("utf-8"))
            assert len(entry.top_logprobs) == 3
            ranked = [t.logprob for t in entry.top_logprobs]
            assert ranked == sorted(ranked, reverse=True) and all(lp <= 0 for lp in ranked)
            assert entry.logprob == pytest.approx(ranked[0], abs=1e-4)
    without = client.chat.completions.create(model=tiny_server.model, messages=CHAT, max_tokens=2, logprobs=None)  # type: ignore[arg-type]
    assert without.choices[0].logprobs is None


def test_chat_stop_strings_end_the_answer_before_them(client: openai.OpenAI, tiny_server: TinyServer) -> None:
    """A random model's text holds some common characters within 40 tokens: every choice that stopped on one
    says which, and none contains any."""
    stops = [" ", "e", "a", "\n"]
    chat = client.chat.completions.create(
        model=tiny_server.model,
        messages=CHAT,  # type: ignore[arg-type]
        n=8,
        temperature=1.0,
        max_tokens=40,
        stop=stops,
        extra_body={"ignore_eos": True},
    )
    assert all(not any(s in (c.message.content or "") for s in stops) for c in chat.choices)
    stopped = [c for c in chat.choices if c.finish_reason == "stop"]
    assert stopped, [c.message.content for c in chat.choices]
    assert all((c.model_extra or {}).get("stop_reason") in stops for c in stopped)
    assert chat.usage is not None and chat.usage.completion_tokens < 8 * 40


def test_presence_and_frequency_penalties_push_greedy_decoding_off_repeats(
    client: openai.OpenAI, tiny_server: TinyServer
) -> None:
    def distinct_tokens(**penalties: float) -> int:
        chat = client.chat.completions.create(
            model=tiny_server.model,
            messages=CHAT,  # type: ignore[arg-type]
            temperature=0.0,
            max_tokens=24,
            logprobs=True,
            extra_body=EXACT,
            **penalties,  # type: ignore[arg-type]
        )
        content = chat.choices[0].logprobs.content  # type: ignore[union-attr]
        assert content is not None and len(content) == 24
        return len({entry.token for entry in content})

    plain = distinct_tokens()
    assert distinct_tokens(frequency_penalty=2.0) > plain
    assert distinct_tokens(presence_penalty=2.0) > plain


# ----------------------------------------------------------------------------------------------- streaming, sync


def test_stream_sends_deltas_for_every_choice_with_usage_only_when_asked(
    client: openai.OpenAI, tiny_server: TinyServer
) -> None:
    def collect(**options: Any) -> tuple[Counter[int], set[int], Any, int]:
        stream = client.chat.completions.create(
            model=tiny_server.model,
            messages=CHAT,  # type: ignore[arg-type]
            n=2,
            max_tokens=6,
            temperature=1.0,
            stream=True,
            extra_body=EXACT,
            **options,
        )
        text: Counter[int] = Counter()
        finished, usage, chunks = set(), None, 0
        for chunk in stream:
            chunks += 1
            assert chunk.object == "chat.completion.chunk" and chunk.model == tiny_server.model
            usage = chunk.usage or usage
            for choice in chunk.choices:
                text[choice.index] += len(choice.delta.content or "")
                if choice.finish_reason:
                    finished.add(choice.index)
        return text, finished, usage, chunks

    text, finished, usage, chunks = collect()
    assert finished == {0, 1} and set(text) <= {0, 1} and usage is None and chunks >= 2
    text, finished, usage, _ = collect(stream_options={"include_usage": True})
    assert finished == {0, 1}
    _usage_adds_up(usage, completion_tokens=2 * 6)


# ----------------------------------------------------------------------------------------------- completions, sync


def test_completions_take_null_valued_fields_as_the_sdk_sends_them(
    client: openai.OpenAI, tiny_server: TinyServer
) -> None:
    completion = client.completions.create(
        model=tiny_server.model,
        prompt=PROMPT,
        max_tokens=3,
        logprobs=None,
        echo=None,
        stop=None,
        seed=None,
        user=None,  # type: ignore[arg-type]
        extra_body=EXACT,
    )
    assert completion.choices[0].logprobs is None and completion.choices[0].finish_reason == "length"
    _usage_adds_up(completion.usage, completion_tokens=3)


def test_completions_with_n_and_a_prompt_list_index_prompt_times_n_plus_sample(
    client: openai.OpenAI, tiny_server: TinyServer
) -> None:
    batch = client.completions.create(
        model=tiny_server.model, prompt=["1 +", "2 +"], n=2, max_tokens=4, temperature=1.0, extra_body=EXACT
    )
    assert sorted(c.index for c in batch.choices) == [0, 1, 2, 3]
    _usage_adds_up(batch.usage, completion_tokens=2 * 2 * 4)


def test_completions_logprobs_with_echo_return_the_prompt_tokens_first(
    client: openai.OpenAI, tiny_server: TinyServer
) -> None:
    scored = client.completions.create(model=tiny_server.model, prompt=PROMPT, max_tokens=0, echo=True, logprobs=1)
    prompt_tokens = scored.usage.prompt_tokens  # type: ignore[union-attr]
    completion = client.completions.create(
        model=tiny_server.model, prompt=PROMPT, max_tokens=3, echo=True, logprobs=2, temperature=1.0, extra_body=EXACT
    )
    (choice,) = completion.choices
    logprobs = choice.logprobs
    assert logprobs is not None and logprobs.tokens and logprobs.token_logprobs and logprobs.text_offset
    assert logprobs.top_logprobs is not None
    assert len(logprobs.tokens) == prompt_tokens + 3 == len(logprobs.token_logprobs) == len(logprobs.top_logprobs)
    assert "".join(logprobs.tokens[:prompt_tokens]) == PROMPT
    assert choice.text.startswith(PROMPT)
    # The first prompt token has nothing before it to be predicted from.
    assert logprobs.token_logprobs[0] is None and logprobs.top_logprobs[0] is None
    assert all(lp is not None and lp <= 0 for lp in logprobs.token_logprobs[1:])
    # The chosen token plus the top 2: two entries when it is among them, three when not.
    # Each position's top list is a dict keyed by decoded text: the 2 asked for plus the sampled token when it is
    # not among them, and fewer keys when two token ids of the tiny byte-level tokenizer decode to the same text
    # (seen in a clean-clone run: a position with one key).
    assert all(top is not None and 1 <= len(top) <= 3 for top in logprobs.top_logprobs[1:])
    assert sum(len(top) >= 2 for top in logprobs.top_logprobs[1:]) >= len(logprobs.top_logprobs[1:]) // 2
    assert logprobs.text_offset[0] == 0 and logprobs.text_offset == sorted(logprobs.text_offset)
    _usage_adds_up(completion.usage, completion_tokens=3)


def test_max_tokens_0_with_echo_scores_a_continuation_as_lm_eval_does(
    client: openai.OpenAI, tiny_server: TinyServer
) -> None:
    """lm-evaluation-harness's `local-completions` log-likelihood: the continuation's logprob is read from the
    echoed prompt+continuation. The answer is the prompt alone (vLLM's usage still counts the one token the engine
    steps to, as its own server does), and the context's logprobs are the same whatever follows it (causal)."""
    context, continuation = PROMPT, " 5"
    whole = client.completions.create(
        model=tiny_server.model, prompt=context + continuation, max_tokens=0, echo=True, logprobs=1, temperature=0.0
    )
    alone = client.completions.create(model=tiny_server.model, prompt=context, max_tokens=0, echo=True, logprobs=1)
    (choice,), (context_choice,) = whole.choices, alone.choices
    assert choice.text == context + continuation and context_choice.text == context
    _usage_adds_up(whole.usage)
    tokens, scores = choice.logprobs.tokens, choice.logprobs.token_logprobs  # type: ignore[union-attr]
    context_scores = context_choice.logprobs.token_logprobs  # type: ignore[union-attr]
    assert len(tokens) == whole.usage.prompt_tokens  # type: ignore[union-attr]
    k = len(context_scores)  # type: ignore[arg-type]
    assert "".join(tokens[:k]) == context and "".join(tokens[k:]) == continuation  # type: ignore[index]
    assert scores[1:k] == pytest.approx(context_scores[1:], abs=1e-3)  # type: ignore[index]
    loglikelihood = sum(scores[k:])  # type: ignore[index, arg-type]
    assert loglikelihood < 0 and math.isfinite(loglikelihood)


# ----------------------------------------------------------------------------------------------- async client


def test_async_client_chat_stream_and_scoring_side_by_side(tiny_server: TinyServer) -> None:
    async def run() -> tuple[Any, Any, Any]:
        async with _async_client(tiny_server) as client:
            chat = client.chat.completions.create(
                model=tiny_server.model,
                messages=CHAT,  # type: ignore[arg-type]
                n=2,
                max_completion_tokens=5,
                temperature=0.8,
                top_p=0.95,
                presence_penalty=0.5,
                frequency_penalty=0.5,
                logprobs=True,
                top_logprobs=2,
                user="async-user",
                extra_body=EXACT,
            )
            scoring = client.completions.create(
                model=tiny_server.model, prompt=PROMPT, max_tokens=0, echo=True, logprobs=2, temperature=0.0
            )

            async def streamed() -> tuple[str, Any]:
                stream = await client.completions.create(
                    model=tiny_server.model,
                    prompt=PROMPT,
                    max_tokens=5,
                    stop=None,
                    stream=True,
                    stream_options={"include_usage": True},
                    extra_body=EXACT,
                )
                text, usage = "", None
                async for chunk in stream:
                    usage = chunk.usage or usage
                    text += "".join(c.text for c in chunk.choices)
                return text, usage

            return await asyncio.gather(chat, scoring, streamed())

    chat, scoring, (text, usage) = asyncio.run(run())
    assert len(chat.choices) == 2
    assert all(len(c.logprobs.content) == 5 for c in chat.choices)
    assert all(len(e.top_logprobs) == 2 and e.logprob <= 0 for c in chat.choices for e in c.logprobs.content)
    _usage_adds_up(chat.usage, completion_tokens=2 * 5)
    assert "".join(scoring.choices[0].logprobs.tokens) == PROMPT
    _usage_adds_up(usage, completion_tokens=5)
    assert text  # five tokens of a byte-level vocabulary decode to some text


# ----------------------------------------------------------------------------------------------- refusals


def test_a_model_not_served_is_404_naming_the_served_ones(client: openai.OpenAI, tiny_server: TinyServer) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=CHAT, max_tokens=2)  # type: ignore[arg-type]
    assert caught.value.status_code == 404 and f"served: {tiny_server.model}" in caught.value.message
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="gpt-4o", prompt=PROMPT, max_tokens=2)


def test_a_prompt_past_the_context_is_400_saying_so(client: openai.OpenAI, tiny_server: TinyServer) -> None:
    long = "word " * (tiny_server.max_model_len + 100)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=tiny_server.model, messages=[{"role": "user", "content": long}])
    assert f"maximum context length is {tiny_server.max_model_len} tokens" in caught.value.message
    with pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(model=tiny_server.model, prompt=long, max_tokens=2)
    assert f"maximum context length is {tiny_server.max_model_len} tokens" in caught.value.message


def test_a_bad_key_is_401_for_sync_and_async_clients(tiny_server: TinyServer) -> None:
    bad = openai.OpenAI(base_url=tiny_server.openai_base_url, api_key="not-the-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        bad.chat.completions.create(model=tiny_server.model, messages=CHAT, max_tokens=2)  # type: ignore[arg-type]
    assert caught.value.status_code == 401 and "invalid API key" in caught.value.message

    async def run() -> None:
        async with _async_client(tiny_server, key="not-the-key") as client:
            await client.completions.create(model=tiny_server.model, prompt=PROMPT, max_tokens=2)

    with pytest.raises(openai.AuthenticationError):
        asyncio.run(run())


def test_a_full_queue_is_503_with_retry_after_and_the_server_answers_afterwards(
    client: openai.OpenAI, tiny_server: TinyServer, report
) -> None:
    """64 requests at once against 4 running + 4 queued: the rest are refused at once, never left hanging."""

    async def flood() -> list[Any]:
        async with _async_client(tiny_server) as client:
            calls = [
                client.chat.completions.create(
                    model=tiny_server.model,
                    messages=CHAT,  # type: ignore[arg-type]
                    max_tokens=16,
                    temperature=1.0,
                    extra_body=EXACT,
                )
                for _ in range(64)
            ]
            return await asyncio.gather(*calls, return_exceptions=True)

    outcomes = asyncio.run(flood())
    refused = [o for o in outcomes if isinstance(o, openai.APIStatusError)]
    answered = [o for o in outcomes if not isinstance(o, BaseException)]
    report(f"openai AsyncOpenAI, 64 requests at once vs queue 4+4: {len(answered)} answered, {len(refused)} refused")
    assert len(refused) + len(answered) == 64, [o for o in outcomes if isinstance(o, BaseException)][:3]
    assert refused and answered
    for error in refused:
        assert error.status_code == 503 and isinstance(error, openai.InternalServerError)
        # Serve refuses before any of our code runs, with a plain-text body that says why: the replica behind
        # HAProxy (cluster.serve_ingress=haproxy) names backpressure, Serve's Python proxy names the bound.
        assert error.response.headers["retry-after"].isdigit()
        assert "backpressure" in error.response.text or "max_queued_requests=4" in error.response.text
    assert all(a.usage.completion_tokens == 16 for a in answered)
    after = client.chat.completions.create(model=tiny_server.model, messages=CHAT, max_tokens=2)  # type: ignore[arg-type]
    assert after.choices[0].message.content is not None
