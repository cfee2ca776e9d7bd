"""The base of every config section (strict, frozen pydantic) and the parts several sections share: the
models an engine loads, sampling, the prompt."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# The paper's system prompt, for training and evaluation alike.
LIMO_SYSTEM_PROMPT = "Please reason step by step, and put your final answer within \\boxed{}."


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ModelConfig(StrictModel):
    """A model an engine can load: a local HF folder, a hub name, or `toy:<name>` for the built-in toy world."""

    path: str
    tokenizer: str | None = None
    revision: str | None = None
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "bfloat16"
    max_model_len: int = Field(gt=0)
    tensor_parallel_size: int = Field(default=1, ge=1)
    pipeline_parallel_size: int = Field(default=1, ge=1)
    gpu_memory_utilization: float = Field(default=0.9, gt=0, le=1)
    # Off unless a config turns it on: remote code from a hub repo runs with the cluster's credentials.
    trust_remote_code: bool = False
    # Passed through to vllm.LLM / AsyncEngineArgs; for knobs this tree does not name.
    engine_kwargs: dict[str, Any] = Field(default_factory=dict)


class SamplingConfig(StrictModel):
    temperature: float = Field(ge=0)
    top_p: float = Field(default=1.0, gt=0, le=1)
    max_tokens: int = Field(gt=0)


class PromptConfig(StrictModel):
    system: str = LIMO_SYSTEM_PROMPT
    # "model" uses the tokenizer's own chat template (Qwen's for Qwen models); anything else is a Jinja template.
    chat_template: str = "model"
