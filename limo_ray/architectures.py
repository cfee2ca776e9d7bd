"""Model architectures as numbers: enough to count parameters, training activations and the KV cache per token.

Both the planner (engine weights and KV cache) and the training memory estimator size models from these, before
any download: a local folder's `config.json`, or the table of the hub models the presets name.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from limo_ray.errors import LimoError

__all__ = ["KNOWN_ARCHS", "ModelArch", "arch_for", "qwen2_arch_from_config"]


@dataclass(frozen=True)
class ModelArch:
    """The architecture numbers that decide memory: enough to count parameters, activations and KV cache."""

    name: str
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    vocab_size: int
    tie_word_embeddings: bool = False
    head_dim: int | None = None
    qkv_bias: bool = True
    # For architectures the dense-decoder formulas do not describe (MoE, MLA): stated totals.
    total_params: int | None = None
    kv_cache_bytes_per_token: int | None = None
    # The checkpoint's native weight width (1 for FP8 checkpoints such as DeepSeek-R1); None: the engine dtype.
    weight_bytes_per_param: float | None = None
    dense: bool = True

    @property
    def kv_dim(self) -> int:
        return self.num_kv_heads * (self.head_dim or self.hidden_size // self.num_heads)

    @property
    def q_dim(self) -> int:
        return self.num_heads * (self.head_dim or self.hidden_size // self.num_heads)

    def layer_params(self) -> int:
        h, kv, q = self.hidden_size, self.kv_dim, self.q_dim
        attn = h * (q + 2 * kv) + h * q + ((q + 2 * kv) if self.qkv_bias else 0)
        return attn + 3 * h * self.intermediate_size + 2 * h

    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size

    def num_params(self) -> int:
        if self.total_params is not None:
            return self.total_params
        heads = 1 if self.tie_word_embeddings else 2
        return heads * self.embedding_params() + self.num_layers * self.layer_params() + self.hidden_size

    def largest_layer_params(self) -> int:
        """The largest single module's own parameters (DeepSpeed's 'largest layer'): embedding or an MLP matrix."""
        return max(self.embedding_params(), self.hidden_size * self.intermediate_size, self.hidden_size * self.q_dim)

    def kv_bytes_per_token(self, dtype_bytes: int = 2) -> int:
        """KV-cache bytes one token takes across all layers (K and V, every kv head)."""
        if self.kv_cache_bytes_per_token is not None:
            return self.kv_cache_bytes_per_token
        return 2 * self.num_layers * self.kv_dim * dtype_bytes

    def weight_bytes(self, dtype_bytes: float = 2.0) -> float:
        return self.num_params() * (self.weight_bytes_per_param or dtype_bytes)


def _qwen25(name: str, h: int, i: int, layers: int, heads: int, kv: int, vocab: int, tied: bool) -> ModelArch:
    return ModelArch(name, h, i, layers, heads, kv, vocab, tie_word_embeddings=tied)


_QWEN25_32B = dict(h=5120, i=27648, layers=64, heads=40, kv=8, vocab=152064, tied=False)
_QWEN25_7B = dict(h=3584, i=18944, layers=28, heads=28, kv=4, vocab=152064, tied=False)
_QWEN25_15B = dict(h=1536, i=8960, layers=28, heads=12, kv=2, vocab=151936, tied=True)
# Qwen1.5-32B (the paper's weaker backbone): the same qwen2 layout as Qwen2.5-32B, a narrower MLP.
_QWEN15_32B = dict(h=5120, i=27392, layers=64, heads=40, kv=8, vocab=152064, tied=False)

# From each repository's config.json. Keys are lower-case hub names.
KNOWN_ARCHS: dict[str, ModelArch] = {
    name.lower(): _qwen25(name, **numbers)  # type: ignore[arg-type]
    for names, numbers in (
        (
            (
                "Qwen/Qwen2.5-32B-Instruct",
                "Qwen/Qwen2.5-32B",
                "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B",
                "Qwen/QwQ-32B-Preview",
                "Qwen/QwQ-32B",
            ),
            _QWEN25_32B,
        ),
        (("Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-7B", "Qwen/Qwen2.5-Math-7B-Instruct"), _QWEN25_7B),
        (("Qwen/Qwen2.5-1.5B-Instruct", "Qwen/Qwen2.5-1.5B"), _QWEN25_15B),
        (("Qwen/Qwen1.5-32B-Chat", "Qwen/Qwen1.5-32B"), _QWEN15_32B),
    )
    for name in names
}
# DeepSeek-R1: 671B-parameter MoE with multi-head latent attention, shipped in FP8. Inference sizing only:
# the dense activation formulas above do not describe it. KV per token: 61 layers x (512 + 64) x 2 bytes.
KNOWN_ARCHS["deepseek-ai/deepseek-r1"] = ModelArch(
    "deepseek-ai/DeepSeek-R1",
    hidden_size=7168,
    intermediate_size=18432,
    num_layers=61,
    num_heads=128,
    num_kv_heads=1,  # MLA's compressed latent is one "head", replicated on every tensor-parallel rank
    vocab_size=129280,
    total_params=671_000_000_000,
    kv_cache_bytes_per_token=61 * (512 + 64) * 2,
    weight_bytes_per_param=1.0,
    dense=False,
)


def qwen2_arch_from_config(config: Mapping[str, Any] | str | Path, name: str | None = None) -> ModelArch:
    """A dense decoder's numbers from its HF `config.json` (a mapping, the file, or the model folder)."""
    if not isinstance(config, Mapping):
        path = Path(config)
        path = path / "config.json" if path.is_dir() else path
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise LimoError(f"cannot read model config {path}: {exc}") from None
        name = name or str(path.parent)
    assert isinstance(config, Mapping)
    model_type = str(config.get("model_type", ""))
    if "moe" in model_type or "num_experts" in config or "n_routed_experts" in config:
        raise LimoError(f"model {name or model_type}: {model_type} is a mixture of experts; only dense decoders")
    try:
        return ModelArch(
            name=name or str(config.get("_name_or_path") or model_type),
            hidden_size=int(config["hidden_size"]),
            intermediate_size=int(config["intermediate_size"]),
            num_layers=int(config["num_hidden_layers"]),
            num_heads=int(config["num_attention_heads"]),
            num_kv_heads=int(config.get("num_key_value_heads") or config["num_attention_heads"]),
            vocab_size=int(config["vocab_size"]),
            tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
            head_dim=int(config["head_dim"]) if config.get("head_dim") else None,
            # Qwen2 carries q/k/v biases; Llama-style configs say so with attention_bias.
            qkv_bias=bool(config.get("attention_bias", model_type == "qwen2")),
        )
    except KeyError as exc:
        raise LimoError(f"model {name or model_type}: config.json lacks {exc.args[0]!r}") from None


def arch_for(model: str) -> ModelArch | None:
    """The architecture of a local folder (its config.json) or a known hub name; None when it cannot be told."""
    path = Path(model)
    if "://" not in model and (path / "config.json").is_file():
        return qwen2_arch_from_config(path, name=model)
    return KNOWN_ARCHS.get(model.lower().rstrip("/"))
