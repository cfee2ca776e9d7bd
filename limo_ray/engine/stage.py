"""The Ray Data stage that holds a vLLM engine, and `generate()`, which runs a Dataset through it.

Built as our own `map_batches` class around `vllm.LLM` rather than `ray.data.llm`: the latter returns only the
first completion when `n > 1` and rebuilds its engine for every dataset run (STACK_NOTES), while the filters need
`n` samples per request so the prompt's prefill is shared. Rows carry either a `problem` (templated here as
a chat with the spec's system prompt) or a ready `prompt` string; an optional per-row `n` overrides the
sampling default, so one engine serves rounds of different sizes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from limo_ray.engine.spec import EngineSpec

if TYPE_CHECKING:
    import ray.data

OUTPUT_COLUMNS = ("completions", "completion_tokens", "finish_reasons", "prompt_tokens", "error", "engine_ready_at")


def chat_messages(problem: str, system_prompt: str | None) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return [*messages, {"role": "user", "content": problem}]


class VLLMStage:
    """`map_batches` callable class: one vLLM engine per actor, alive for the whole dataset run."""

    def __init__(self, spec: EngineSpec, sampling: Mapping[str, Any]) -> None:
        os.environ.update(spec.env())
        from vllm import LLM

        self.spec = spec
        self.sampling = dict(sampling)
        self.llm = LLM(**spec.llm_kwargs())
        self.tokenizer = self.llm.get_tokenizer()
        self.ready_at = time.time()

    def prompt_for(self, problem: str) -> str:
        return self.tokenizer.apply_chat_template(
            chat_messages(problem, self.spec.system_prompt),
            tokenize=False,
            add_generation_prompt=True,
            chat_template=self.spec.chat_template,
        )

    def ready(self) -> float:
        return self.ready_at

    def pid(self) -> int:
        return os.getpid()

    def __call__(self, batch: Mapping[str, Sequence[Any]], sampling: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Generate for a batch of rows; `sampling` replaces the constructor's for this call (an engine pool
        serves several stages' sampling settings)."""
        from vllm import SamplingParams

        sampling = self.sampling if sampling is None else dict(sampling)
        size = len(next(iter(batch.values())))
        if "prompt" in batch:
            prompts = [str(p) for p in batch["prompt"]]
        else:
            prompts = [self.prompt_for(str(p)) for p in batch["problem"]]
        counts = [int(n) for n in batch["n"]] if "n" in batch else [int(sampling.get("n", 1))] * size
        params = [SamplingParams(**{**sampling, "n": n}) for n in counts]
        outputs, errors = self._generate(prompts, params)
        out: dict[str, Any] = {key: _as_list(values) for key, values in batch.items()}
        out["completions"] = [[c.text for c in o.outputs] if o else [] for o in outputs]
        out["completion_tokens"] = [[len(c.token_ids) for c in o.outputs] if o else [] for o in outputs]
        out["finish_reasons"] = [[str(c.finish_reason) for c in o.outputs] if o else [] for o in outputs]
        out["prompt_tokens"] = [len(o.prompt_token_ids or []) if o else 0 for o in outputs]
        out["error"] = errors
        out["engine_ready_at"] = [self.ready_at] * size
        return out

    def _generate(self, prompts: list[str], params: list[Any]) -> tuple[list[Any], list[str | None]]:
        """Generate a batch; if it fails, retry row by row so one poisoned prompt fails alone.

        When every row fails on its own too, the engine itself is broken: raise, so Ray restarts the actor
        and retries the batch, rather than recording a whole batch as failed rows.
        """
        try:
            return self.llm.generate(prompts, params, use_tqdm=False), [None] * len(prompts)
        except Exception as batch_error:
            outputs: list[Any] = []
            errors: list[str | None] = []
            for prompt, param in zip(prompts, params, strict=True):
                try:
                    outputs.append(self.llm.generate([prompt], [param], use_tqdm=False)[0])
                    errors.append(None)
                except Exception as row_error:
                    outputs.append(None)
                    errors.append(f"{type(row_error).__name__}: {row_error}"[:500])
            if all(e is not None for e in errors):
                raise batch_error
            return outputs, errors


def _as_list(values: Any) -> list[Any]:
    return values.tolist() if isinstance(values, np.ndarray) else list(values)


def generate(
    ds: ray.data.Dataset,
    spec: EngineSpec,
    sampling: Mapping[str, Any],
    concurrency: int = 1,
    batch_size: int = 64,
) -> ray.data.Dataset:
    """Run `ds` through `concurrency` engine actors; adds the OUTPUT_COLUMNS to every row.

    For one-process engines only (CPU, or one GPU per actor, which Ray Data places and frees itself). A
    tensor-parallel engine needs a placement group per actor, and Ray Data gives no hook to remove the groups
    when its actors end: those go through `EnginePool`, which does.
    """
    from limo_ray.errors import LimoError

    if spec.needs_placement_group():
        raise LimoError(
            f"engine {spec.name!r}: a {spec.world_size}-GPU engine cannot run in a Ray Data stage (its placement "
            "groups would outlive the run); use limo_ray.engine.EnginePool"
        )
    return ds.map_batches(
        VLLMStage,
        fn_constructor_kwargs={"spec": spec, "sampling": dict(sampling)},
        batch_size=batch_size,
        concurrency=concurrency,
        **spec.actor_options(),
    )
