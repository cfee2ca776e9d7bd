"""Per-GPU memory for full fine-tuning, estimated before any GPU is rented: refuse a plan that cannot fit.

Why: a 32B full fine-tune at 16k tokens sits close to the edge of an 80 GB card, and an OOM found after the
cluster started (and the weights downloaded) costs hours. Everything here is arithmetic on architecture
numbers: no model download, no GPU.

The arithmetic (P = parameters, N = GPUs, s = tokens per sequence, b = micro-batch, L = layers, h = hidden,
i = intermediate, a = attention heads, h_kv = kv_heads x head_dim, V = vocab; all bytes, then GiB = 2**30):

1. Parameters from the architecture (Qwen2: untied lm_head except the small models, q/k/v biases):
   embed V*h, lm_head V*h (0 if tied), per layer h*(h + 2*h_kv) + (h + 2*h_kv) [q,k,v + biases] + h*h [o]
   + 3*h*i [gate, up, down] + 2h [norms]; plus a final norm h. Qwen2.5-32B: 32.76e9.
2. Model states, per ZeRO stage (mixed precision with Adam: 2 bytes bf16 params, 2 bf16 grads, 4 fp32 master
   params, 4 fp32 grads, 8 Adam moments):
   - stage 3: DeepSpeed's `estimate_zero3_model_states_mem_needs`: 4 x largest-layer params (that module's
     bf16 params + grads gathered) + 18P/N; offloading the optimizer leaves 2P/N on the GPU, offloading the
     params too leaves only the largest layer.
   - stage 2: DeepSpeed's `estimate_zero2_model_states_mem_needs`: 2P + 18P/N; with the optimizer offloaded 2P.
   - stage 1 (DeepSpeed ships no estimator; same accounting): 2P params + 2P grads replicated + 16P/N; with the
     optimizer offloaded 4P.
   - stage 0: 20P on every GPU (no partitioning; CPU offload needs ZeRO).
   Host memory per node is DeepSpeed's own cpu estimate (reported, not checked).
3. Activations. Measured with `torch.autograd.graph.saved_tensors_hooks` on a Qwen2 decoder layer (bf16, the
   test in tests/train/test_memory.py keeps this honest), one layer saves per token
   act*(6h + 2h_kv + 4i) + 8h + 4a + 8 bytes (act = 2 for bf16): the two RMSNorms' fp32 copies (8h) and bf16
   casts/outputs, q/k/v after RoPE, the attention output and its fp32 log-sum-exp (4a), and the SwiGLU MLP's
   gate, up, silu(gate) and product (4i). Qwen2.5-32B at 16,384 tokens: 5.0 GiB per layer.
   - Attention: FlashAttention-2 and PyTorch sdpa (flash / memory-efficient kernels) keep O(s) state, counted
     above. sdpa also gets a b*s*s boolean mask from transformers when sequences are packed or padded (one,
     shared by all layers). Eager attention materialises the scores: + 6*a*s bytes per token per layer (fp32
     softmax + its bf16 cast): 60 GiB per layer for a 32B model at 16k, which is why eager is refused there.
   - With gradient checkpointing every layer keeps only its input, s*b*h*act bytes (L+1 of them, counting the
     final norm's), and one layer at a time is recomputed in backward; its activations plus the gradients of
     the same tensors give a recompute working set of 2 x one layer. Without checkpointing all L layers keep
     their activations, plus one layer's gradients.
   - Logits and loss (`loss_impl`), T = s*b tokens, c = chunk tokens:
     "hf", transformers' stock loss: it upcasts the logits to fp32 and runs log-softmax over the whole
       sequence; at the start of backward the fp32 log-probs (4V per token), their gradient (4V), the fp32
       gradient of the logits (4V) and the bf16 logits (2V) are alive together: 14V*T, 32.5 GiB for
       Qwen2.5-32B at 16k.
     "chunked", full bf16 logits with the fp32 cross-entropy in checkpointed chunks
       (`limo_ray.train.packing.token_loss_sum`): the bf16 logits, the copy of the scored positions, and in
       backward the accumulated gradient plus the chunk's incoming one (2V each) = 8V*T, plus one chunk's fp32
       working set 14V*c: 34.8 GiB at 16k with 8,192-token chunks, 20.6 GiB with 1,024.
     "fused", lm_head + cross-entropy per chunk of hidden states, recomputed in backward (Liger's fused linear
       cross-entropy): the logits never exist whole, 14V*c: 2.0 GiB with 1,024-token chunks.
   - The checkpoints live through the whole step; the recompute working set and the loss peak come at
     different moments, so the activation peak is checkpoints + max(recompute, loss) (+ the sdpa mask).
4. Buffers: ZeRO-3 holds the current and the prefetched layer's gathered bf16 params (2 x layer params x 2)
   and a reduce bucket of h*h elements (bf16 + fp32 copy); ZeRO-0/1/2 hold DeepSpeed's default all-reduce and
   all-gather buckets (5e8 elements each, bf16). Runtime: CUDA context, cuBLAS workspaces and NCCL buffers
   outside PyTorch's allocator, 2 GiB. Fragmentation: 10% of everything the allocator holds.

Qwen2.5-32B, ZeRO-3, 16,384 tokens, micro-batch 1, FA2, chunked loss, 16 GPUs: model states 37.2 (3.1 for the
gathered embedding + 18 x 32.76e9 / 16 bytes) + activations 20.2 (checkpoints 65 x 16,384 x 5,120 x 2 = 10.2,
recompute 2 x 5.0 = 10.0) + buffers 2.0 + runtime 2.0 + fragmentation 5.9 = 67.3 GiB per GPU: fits an 80 GB card
(79.6 GiB). With transformers' stock loss the loss peak (32.5) replaces the recompute peak: 92.0 GiB, refused.
On one GPU the model states alone are 552 GiB: refused, with "try 16 GPUs of this size". So at 16k tokens the
logits must never exist whole: `loss_impl` (default "fused") says which loss the training loop computes; with
"chunked" at 8,192-token chunks the same run needs 94.6 GiB and is refused (78.9 with 1,024-token chunks).

Item 1 lives in `limo_ray.architectures`, item 2 in `limo_ray.train.model_states`, GPU sizes in `limo_ray.hardware`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from limo_ray.architectures import ModelArch, arch_for, qwen2_arch_from_config
from limo_ray.errors import LimoError
from limo_ray.hardware import GIB
from limo_ray.train.model_states import model_states_bytes

if TYPE_CHECKING:
    from limo_ray.config import RunConfig

Attention = Literal["flash_attention_2", "sdpa", "eager"]
LossImpl = Literal["hf", "chunked", "fused"]

# Bytes the allocator does not see: CUDA context, cuBLAS workspaces, NCCL buffers.
RUNTIME_GIB = 2.0
# Share of what the caching allocator holds that is lost to fragmentation with long, varying sequences.
FRAGMENTATION = 0.10
# Tokens per chunk: "chunked" = limo_ray.train.packing.token_loss_sum's default; "fused" = a Liger-like size.
LOSS_CHUNK_TOKENS: dict[str, int] = {"chunked": 8192, "fused": 1024}
# DeepSpeed's default reduce / all-gather bucket sizes for ZeRO-0/1/2, in elements.
DS_BUCKET_ELEMENTS = 5e8


# ----------------------------------------------------------------------------------------------- the estimate


@dataclass(frozen=True)
class FitVerdict:
    ok: bool
    message: str

    def __bool__(self) -> bool:
        return self.ok


@dataclass(frozen=True)
class TrainMemoryEstimate:
    """Per-GPU memory of one training step, each term in GiB (see the module docstring for the arithmetic)."""

    model: str
    num_params: int
    zero_stage: int
    num_gpus: int
    gpus_per_node: int
    seq_len: int
    micro_batch_size: int
    attention: Attention
    loss_impl: LossImpl
    gradient_checkpointing: bool
    offload_optimizer: bool
    offload_params: bool
    model_states_gib: float
    checkpoints_gib: float
    recompute_gib: float
    loss_gib: float
    attention_mask_gib: float
    buffers_gib: float
    runtime_gib: float
    fragmentation_gib: float
    cpu_gib_per_node: float
    # Everything `estimate_train_memory` was called with: re-estimates (e.g. more GPUs) start from it.
    inputs: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def activations_gib(self) -> float:
        return self.checkpoints_gib + max(self.recompute_gib, self.loss_gib) + self.attention_mask_gib

    @property
    def total_gib(self) -> float:
        return (
            self.model_states_gib + self.activations_gib + self.buffers_gib + self.runtime_gib + self.fragmentation_gib
        )

    def __str__(self) -> str:
        return f"{self.describe()}: {self.breakdown()}"

    def describe(self) -> str:
        offload = [w for w, on in (("optimizer", self.offload_optimizer), ("params", self.offload_params)) if on]
        return (
            f"{self.model} ({self.num_params / 1e9:.2f}B params), ZeRO-{self.zero_stage}"
            f"{' + CPU offload of ' + ' and '.join(offload) if offload else ''}, {self.num_gpus} GPU(s), "
            f"{self.seq_len:,} tokens x micro-batch {self.micro_batch_size}, {self.attention}, "
            f"{'gradient checkpointing' if self.gradient_checkpointing else 'no checkpointing'}, "
            f"{self.loss_impl} loss"
        )

    def breakdown(self) -> str:
        peak_name = "recompute" if self.recompute_gib >= self.loss_gib else "loss"
        act = (
            f"activations {self.activations_gib:.1f} [checkpoints {self.checkpoints_gib:.1f}, "
            f"{peak_name} peak {max(self.recompute_gib, self.loss_gib):.1f}"
            f"{f', sdpa mask {self.attention_mask_gib:.1f}' if self.attention_mask_gib else ''}]"
        )
        return (
            f"model states {self.model_states_gib:.1f} + {act} + buffers {self.buffers_gib:.1f} + runtime "
            f"{self.runtime_gib:.1f} + fragmentation {self.fragmentation_gib:.1f} = {self.total_gib:.1f} GiB per GPU"
        )

    def fits(self, gpu_mem_gib: float) -> FitVerdict:
        if self.total_gib <= gpu_mem_gib:
            return FitVerdict(
                True,
                f"fits: {self.describe()} needs {self.breakdown()} <= {gpu_mem_gib:.1f} GiB "
                f"({gpu_mem_gib - self.total_gib:.1f} GiB spare)",
            )
        return FitVerdict(
            False,
            f"does not fit: {self.describe()} needs {self.breakdown()} > {gpu_mem_gib:.1f} GiB per GPU"
            f"{self._advice(gpu_mem_gib)}",
        )

    def require_fit(self, gpu_mem_gib: float) -> None:
        verdict = self.fits(gpu_mem_gib)
        if not verdict.ok:
            raise LimoError(verdict.message)

    def _advice(self, gpu_mem_gib: float) -> str:
        hints = []
        if self.zero_stage >= 2:
            need = self.min_gpus(gpu_mem_gib)
            if need is not None and need > self.num_gpus:
                hints.append(f"{need} GPUs of this size")
        if self.loss_impl != "fused":
            hints.append("a fused lm_head + cross-entropy loss")
        if self.attention == "eager":
            hints.append("flash_attention_2 or sdpa")
        if self.zero_stage < 3:
            hints.append("ZeRO-3")
        if not self.offload_optimizer and self.zero_stage >= 1:
            hints.append("CPU offload of the optimizer")
        hints.append("a shorter max_seq_len")
        return "; try " + ", or ".join(hints)

    def min_gpus(self, gpu_mem_gib: float, limit: int = 4096) -> int | None:
        """The fewest GPUs (whole nodes) with which the same run fits; None if even `limit` GPUs do not."""
        step = max(self.gpus_per_node, 1)
        for n in range(step, limit + 1, step):
            if estimate_train_memory(**{**self.inputs, "num_gpus": n}).total_gib <= gpu_mem_gib:
                return n
        return None


def layer_activation_bytes_per_token(arch: ModelArch, act_bytes: int = 2) -> int:
    """Bytes one decoder layer saves for backward per token (O(s) attention); see the module docstring."""
    h, i, kv, a = arch.hidden_size, arch.intermediate_size, arch.kv_dim, arch.num_heads
    return act_bytes * (6 * h + 2 * kv + 4 * i) + 8 * h + 4 * a + 8


def estimate_train_memory(
    arch: ModelArch,
    *,
    num_gpus: int,
    gpus_per_node: int,
    seq_len: int,
    micro_batch_size: int = 1,
    zero_stage: int = 3,
    offload_optimizer: bool = False,
    offload_params: bool = False,
    gradient_checkpointing: bool = True,
    attention: Attention = "flash_attention_2",
    precision: Literal["bf16", "fp32"] = "bf16",
    packed: bool = False,
    loss_impl: LossImpl = "fused",
    loss_chunk_tokens: int | None = None,
    runtime_gib: float = RUNTIME_GIB,
    fragmentation: float = FRAGMENTATION,
) -> TrainMemoryEstimate:
    """Per-GPU memory of a full fine-tune of `arch` (each term in GiB). Pure arithmetic; no GPU, no download."""
    inputs = dict(locals())  # the call's arguments, kept so that `min_gpus` can re-estimate with more GPUs
    if not arch.dense:
        raise LimoError(f"model {arch.name}: the training memory estimate covers dense decoders only")
    if num_gpus < 1:
        raise LimoError(f"training {arch.name} needs at least one GPU, got {num_gpus}")
    if zero_stage not in (0, 1, 2, 3):
        raise LimoError(f"ZeRO stage must be 0-3, got {zero_stage}")
    act = 2 if precision == "bf16" else 4
    tokens = seq_len * micro_batch_size
    states, cpu = model_states_bytes(arch, zero_stage, num_gpus, gpus_per_node, offload_optimizer, offload_params)

    layer = layer_activation_bytes_per_token(arch, act) * tokens
    if attention == "eager":
        layer += 6 * arch.num_heads * seq_len * tokens
    mask = (
        float(micro_batch_size * seq_len * seq_len) if attention == "sdpa" and (packed or micro_batch_size > 1) else 0.0
    )
    layer_input = float(tokens * arch.hidden_size * act)
    if gradient_checkpointing:
        checkpoints = (arch.num_layers + 1) * layer_input
        recompute = 2.0 * layer
    else:
        checkpoints = arch.num_layers * layer + layer_input
        recompute = float(layer)
    if loss_impl == "hf":
        loss = 14.0 * arch.vocab_size * tokens
    else:
        chunk = min(tokens, loss_chunk_tokens or LOSS_CHUNK_TOKENS[loss_impl])
        whole = 8.0 * arch.vocab_size * tokens if loss_impl == "chunked" else 0.0
        loss = whole + 14.0 * arch.vocab_size * chunk

    # ZeRO-3: current + prefetched layer gathered in bf16, and an h*h reduce bucket (bf16 + fp32); else buckets.
    buffers = 4 * arch.layer_params() + 6 * arch.hidden_size**2 if zero_stage == 3 else 4 * DS_BUCKET_ELEMENTS
    allocated = states + checkpoints + max(recompute, loss) + mask + buffers
    return TrainMemoryEstimate(
        model=arch.name,
        num_params=arch.num_params(),
        zero_stage=zero_stage,
        num_gpus=num_gpus,
        gpus_per_node=gpus_per_node,
        seq_len=seq_len,
        micro_batch_size=micro_batch_size,
        attention=attention,
        loss_impl=loss_impl,
        gradient_checkpointing=gradient_checkpointing,
        offload_optimizer=offload_optimizer,
        offload_params=offload_params,
        model_states_gib=states / GIB,
        checkpoints_gib=checkpoints / GIB,
        recompute_gib=recompute / GIB,
        loss_gib=loss / GIB,
        attention_mask_gib=mask / GIB,
        buffers_gib=buffers / GIB,
        runtime_gib=runtime_gib,
        fragmentation_gib=fragmentation * allocated / GIB,
        cpu_gib_per_node=cpu / GIB,
        inputs=inputs,
    )


def estimate_for_config(
    config: RunConfig, model_config: Any = None, loss_impl: LossImpl = "fused"
) -> TrainMemoryEstimate | None:
    """The estimate for a run config's `train:` section on its `cluster:` (what `limo plan` and a training dry
    run print); None when training runs on CPU or the model's architecture cannot be told.

    `model_config` (a transformers config or its dict) gives the architecture when the model is a folder or hub
    name the table does not know. `train.cpu_offload` offloads the optimizer (not the parameters);
    `attention: auto` is FlashAttention-2 on GPUs. Check it with
    `.require_fit(limo_ray.hardware.gpu_memory_gib(gpu_type))`.
    """
    t = config.train
    if not t.use_gpu:
        return None
    path = config.models[t.model].path
    arch = arch_for(path)
    if arch is None and model_config is not None:
        as_dict = model_config.to_dict() if hasattr(model_config, "to_dict") else model_config
        arch = qwen2_arch_from_config(as_dict, name=path)
    if arch is None:
        return None
    return estimate_train_memory(
        arch,
        num_gpus=t.num_workers,
        gpus_per_node=max(config.cluster.gpus_per_node, 1),
        seq_len=t.max_seq_len,
        micro_batch_size=t.micro_batch_size,
        zero_stage=t.zero_stage,
        offload_optimizer=t.cpu_offload,
        gradient_checkpointing=t.gradient_checkpointing,
        attention="flash_attention_2" if t.attention == "auto" else t.attention,
        precision=t.precision,
        packed=t.packing,
        loss_impl=loss_impl,
    )
