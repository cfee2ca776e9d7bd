"""`limo plan`: what a run will ask of the cluster, and what it will cost, before anything starts.

Why: the expensive mistakes happen before the first token: a tensor-parallel group bigger than the cluster, a
model that does not fit its GPUs, a fine-tune that OOMs at step one, or a strong filter that needs ten times the
GPU-hours budgeted. The plan is arithmetic on the run config, `EngineSpec` (GPUs and placement-group bundles
per engine), the training memory estimator (`limo_ray.train.memory`) and stated `Assumptions`; every assumption
is printed with the plan, so a number can be traced and argued with.

Per stage:
- GPUs and actors: an engine occupies `tensor_parallel_size x pipeline_parallel_size` GPUs (its bundles); a
  curate stage runs as many engine replicas as fit the cluster (groups no larger than a node pack per node);
  training asks for `train.num_workers` GPUs; evaluation serves up to `serve.max_replicas` replicas.
- Problems and tokens: pool -> dedup -> decontamination -> weak filter -> strong filter -> balance -> chains
  -> select, each step keeping a stated survival fraction. Tokens = problems x generations per problem x the
  expected response length (stated per stage, or per model, and never more than the stage's `max_tokens`).
  The weak filter samples in rounds and stops a problem at its first success; the strong filter stops a problem
  once it passes the band's top (`strong_early_stop` of them after the first round).
- Time and cost: decode tokens/s per GPU by model size, training tokens/s per GPU from FLOPs (8 x params per
  token with gradient checkpointing, plus attention) at a stated MFU; wall time = tokens / (tokens/s x GPUs);
  GPU-hours = wall time x the GPUs the stage asks for (each stage is its own right-sized job, see
  cluster/kuberay/); cost = GPU-hours x `cluster.gpu_hour_usd`.
Refused (LimoError): an engine whose TP x PP group is larger than the cluster, an engine whose weights plus one
full-length sequence's KV cache do not fit its GPUs, and a fine-tune that does not fit (with the numbers).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

from limo_ray.architectures import arch_for
from limo_ray.benchmarks.registry import BenchmarkRegistry
from limo_ray.config import RunConfig, SamplingConfig
from limo_ray.engine.placement import check_layout, describe_bundles, engine_replicas, replica_placement
from limo_ray.engine.spec import EngineSpec, device_for, engine_spec
from limo_ray.errors import LimoError
from limo_ray.hardware import GIB, GPUS, gpu_bf16_tflops, gpu_memory_gib
from limo_ray.train.memory import TrainMemoryEstimate, estimate_for_config, estimate_train_memory

# The limo-32b preset names no pool files (users bring them): plan for a pool of this many problems.
DEFAULT_POOL_SIZE = 100_000

SizeClass = Literal["small", "medium", "large"]


@dataclass(frozen=True)
class Assumptions:
    """Every number the plan takes on faith. Printed with the plan; override any of them."""

    # Fraction of problems each step keeps.
    dedup_survival: float = 0.70
    decontamination_survival: float = 0.99
    weak_unsolved_after_first_round: float = 0.35
    weak_survival: float = 0.20  # unsolved after every weak attempt: the "hard" problems
    strong_early_stop: float = 0.60  # pass the band's top within the strong filter's first round
    strong_survival: float = 0.10  # solved within [keep_min, keep_max] of `samples`
    balance_survival: float = 0.90
    chain_correct_rate: float = 0.60  # per chain: its final answer is right
    # Expected response length (tokens) per stage; `response_tokens` overrides per model name.
    weak_response_tokens: int = 600
    strong_response_tokens: int = 12_000
    chain_response_tokens: int = 10_000
    eval_response_tokens: int = 8_000
    prompt_tokens: int = 200
    response_tokens: Mapping[str, int] = field(default_factory=dict)
    # Decode throughput per GPU (tokens/s, vLLM, long reasoning chains, H100-class) by model size:
    # small < 10B parameters <= medium < 100B <= large.
    decode_tokens_per_s_per_gpu: Mapping[str, float] = field(
        default_factory=lambda: {"small": 5000.0, "medium": 1000.0, "large": 400.0}
    )
    cpu_decode_tokens_per_s: float = 10_000.0  # one CPU engine with a toy model (STACK_NOTES)
    # Training throughput: MFU x peak bf16 FLOP/s, or a stated tokens/s per GPU.
    train_mfu: float = 0.35
    gpu_bf16_tflops: float | None = None  # None: from the GPU type (H100 if unknown)
    train_tokens_per_s_per_gpu: float | None = None
    cpu_train_tokens_per_s: float = 10_000.0  # the toy student on CPU, all workers together
    # Engine memory beyond weights and KV cache: activations for a batch, CUDA graphs, sampler (GiB per GPU).
    engine_overhead_gib: float = 4.0
    gpu_memory_gib: float | None = None  # None: from cluster.gpu_type
    # How the training loop computes the loss (limo_ray.train.memory): "fused" = lm_head + cross-entropy per
    # 1,024-token chunk; "chunked" = whole bf16 logits, cross-entropy in 8,192-token chunks; "hf" = stock.
    train_loss: Literal["fused", "chunked", "hf"] = "fused"
    # Evaluated checkpoints: the student before and after fine-tuning.
    eval_checkpoints: int = 2
    # Items assumed for a benchmark whose registry entry does not say (e.g. the toy benchmark).
    benchmark_items_default: int = 300

    def __post_init__(self) -> None:
        for name in (
            "dedup_survival",
            "decontamination_survival",
            "weak_unsolved_after_first_round",
            "weak_survival",
            "strong_early_stop",
            "strong_survival",
            "balance_survival",
            "chain_correct_rate",
            "train_mfu",
        ):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise LimoError(f"plan assumption {name} must be a fraction in [0, 1], got {value}")
        if self.weak_survival > self.weak_unsolved_after_first_round:
            raise LimoError(
                f"plan assumptions: weak_survival ({self.weak_survival}) cannot exceed "
                f"weak_unsolved_after_first_round ({self.weak_unsolved_after_first_round})"
            )


@dataclass(frozen=True)
class EngineAsk:
    """One model's engine: its GPU group, how many replicas the stage runs, and whether it fits."""

    name: str
    model: str
    tensor_parallel_size: int
    pipeline_parallel_size: int
    world_size: int
    bundles: tuple[Mapping[str, float], ...]
    replicas: int
    strategy: str = "STRICT_PACK"  # the placement group's strategy (limo_ray.engine.placement)
    # Known only for a GPU plan of a model whose architecture is known.
    params: int | None = None
    weights_gib_per_gpu: float | None = None
    kv_gib_per_gpu_per_seq: float | None = None
    kv_capacity_tokens: int | None = None  # per replica, after weights and overhead
    memory_gib_per_gpu: float | None = None  # usable: gpu_memory_utilization x GPU memory

    @property
    def gpus(self) -> int:
        return self.replicas * sum(int(b.get("GPU", 0)) for b in self.bundles)


@dataclass(frozen=True)
class StagePlan:
    name: str
    model: str | None
    gpus: int
    actors: int
    problems_in: int
    problems_out: int
    generations: int
    tokens: int
    tokens_per_s: float
    wall_s: float
    gpu_hours: float
    cost_usd: float
    detail: str = ""


@dataclass(frozen=True)
class Plan:
    config_name: str
    device: Literal["cpu", "cuda"]
    num_nodes: int
    gpus_per_node: int
    gpu_type: str | None
    gpu_memory_gib: float | None
    gpu_hour_usd: float
    pool_size: int
    assumptions: Assumptions
    stages: tuple[StagePlan, ...]
    engines: tuple[EngineAsk, ...]
    train_memory: TrainMemoryEstimate | None
    notes: tuple[str, ...] = ()

    @property
    def total_gpus(self) -> int:
        return self.num_nodes * self.gpus_per_node

    @property
    def wall_s(self) -> float:
        return sum(s.wall_s for s in self.stages)

    @property
    def gpu_hours(self) -> float:
        return sum(s.gpu_hours for s in self.stages)

    @property
    def cost_usd(self) -> float:
        return sum(s.cost_usd for s in self.stages)

    def stage(self, name: str) -> StagePlan:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)


# ----------------------------------------------------------------------------------------------- planning


def make_plan(config: RunConfig, assumptions: Assumptions | None = None, pool_size: int = DEFAULT_POOL_SIZE) -> Plan:
    """The plan for `config` on its `cluster:` shape; raises LimoError for a plan that cannot run."""
    a = assumptions or Assumptions()
    if pool_size < 0:
        raise LimoError(f"pool size must be >= 0, got {pool_size}")
    device = device_for(config)
    cluster = config.cluster
    notes: list[str] = []
    gpu_mem = a.gpu_memory_gib if a.gpu_memory_gib is not None else gpu_memory_gib(cluster.gpu_type)
    if device == "cuda" and gpu_mem is None:
        notes.append(
            f"GPU memory unknown for cluster.gpu_type={cluster.gpu_type!r}: memory not checked "
            "(name a known type such as H100-80GB, or pass Assumptions(gpu_memory_gib=...))"
        )

    engines: dict[str, EngineAsk] = {}

    def engine(name: str) -> EngineAsk:
        if name not in engines:
            engines[name] = _engine_ask(config, name, device, gpu_mem, a, notes)
        return engines[name]

    stages: list[StagePlan] = []
    cur = config.curate
    deduped = _keep(pool_size, a.dedup_survival)
    clean = _keep(deduped, a.decontamination_survival)
    stages.append(
        _cpu_stage(
            "curate.prepare",
            pool_size,
            clean,
            f"ingest, dedup (x{a.dedup_survival}), decontaminate (x{a.decontamination_survival}) on CPUs",
        )
    )

    # Weak filter: round k is entered by the problems still unsolved after the attempts before it.
    weak = engine(cur.weak.model)
    weak_len = _length(cur.weak.model, a.weak_response_tokens, cur.weak.sampling, a)
    weak_gens = _weak_generations(clean, cur.weak.rounds, a)
    hard = _keep(clean, a.weak_survival)
    stages.append(
        _gen_stage(
            "curate.weak",
            weak,
            config,
            a,
            n_in=clean,
            n_out=hard,
            generations=weak_gens,
            length=weak_len,
            detail=f"rounds {cur.weak.rounds}, stop at first success; {weak_len:,} tokens per response",
        )
    )

    strong = engine(cur.strong.model)
    strong_len = _length(cur.strong.model, a.strong_response_tokens, cur.strong.sampling, a)
    strong_gens = round(
        hard * (a.strong_early_stop * cur.strong.rounds[0] + (1 - a.strong_early_stop) * cur.strong.samples)
    )
    band = _keep(hard, a.strong_survival)
    stages.append(
        _gen_stage(
            "curate.strong",
            strong,
            config,
            a,
            n_in=hard,
            n_out=band,
            generations=strong_gens,
            length=strong_len,
            detail=f"{cur.strong.samples} samples in rounds {cur.strong.rounds}, keep {cur.strong.keep_min}.."
            f"{cur.strong.keep_max}; {a.strong_early_stop:.0%} stop after round 1; {strong_len:,} tokens per response",
        )
    )

    balanced = _keep(band, a.balance_survival)
    if cur.balance.size is not None:
        balanced = min(balanced, cur.balance.size)
    stages.append(_cpu_stage("curate.balance", band, balanced, f"near-dup + {'/'.join(cur.balance.cells)} quotas"))

    chains_total = len(cur.chains.models) * cur.chains.per_model
    for name in cur.chains.models:
        ask = engine(name)
        length = _length(name, a.chain_response_tokens, cur.chains.sampling, a)
        stages.append(
            _gen_stage(
                f"curate.chains[{name}]",
                ask,
                config,
                a,
                n_in=balanced,
                n_out=balanced,
                generations=balanced * cur.chains.per_model,
                length=length,
                detail=f"{cur.chains.per_model} chains per problem; {length:,} tokens per chain",
            )
        )

    with_chain = _keep(balanced, 1 - (1 - a.chain_correct_rate) ** chains_total)
    selected = min(cur.select.size, with_chain)
    if selected < cur.select.size:
        notes.append(
            f"only ~{with_chain:,} problems are expected to have a correct chain: fewer than select.size="
            f"{cur.select.size:,}; plan for a larger pool if the full set is needed"
        )
    stages.append(
        _cpu_stage("curate.select", with_chain, selected, f"best chain per problem of {chains_total} candidates")
    )

    train_stage, train_memory = _train_stage(config, selected, gpu_mem, a, notes)
    stages.append(train_stage)
    stages.append(_eval_stage(config, engine(config.train.model), a, notes))

    return Plan(
        config_name=config.name,
        device=device,
        num_nodes=cluster.num_nodes,
        gpus_per_node=cluster.gpus_per_node,
        gpu_type=cluster.gpu_type,
        gpu_memory_gib=gpu_mem,
        gpu_hour_usd=cluster.gpu_hour_usd,
        pool_size=pool_size,
        assumptions=a,
        stages=tuple(stages),
        engines=tuple(engines.values()),
        train_memory=train_memory,
        notes=tuple(dict.fromkeys(notes)),
    )


def _keep(n: int, fraction: float) -> int:
    return round(n * fraction)


def _length(model: str, default: int, sampling: SamplingConfig, a: Assumptions) -> int:
    return min(a.response_tokens.get(model, default), sampling.max_tokens)


def _weak_generations(problems: int, rounds: list[int], a: Assumptions) -> int:
    """Attempts made: all problems take round 1; later rounds see the unsolved, decaying geometrically per attempt
    from `weak_unsolved_after_first_round` towards `weak_survival`."""
    total = sum(rounds)
    first = rounds[0]
    u1, uf = a.weak_unsolved_after_first_round, a.weak_survival
    gens, done = 0.0, 0
    for k, attempts in enumerate(rounds):
        if k == 0:
            entering = 1.0
        elif total == first or u1 == 0:
            entering = u1
        else:
            entering = u1 * (uf / u1) ** ((done - first) / (total - first))
        gens += problems * entering * attempts
        done += attempts
    return round(gens)


def _size_class(params: int | None) -> SizeClass:
    if params is None:
        return "medium"
    if params < 10e9:
        return "small"
    return "medium" if params < 100e9 else "large"


def _engine_ask(
    config: RunConfig,
    name: str,
    device: Literal["cpu", "cuda"],
    gpu_mem: float | None,
    a: Assumptions,
    notes: list[str],
) -> EngineAsk:
    spec: EngineSpec = engine_spec(config, name, device)  # raises for TP/PP > 1 on CPU
    cluster = config.cluster
    model_cfg = config.models[name]
    arch = arch_for(model_cfg.path)
    ws = spec.world_size
    ask = EngineAsk(
        name=name,
        model=model_cfg.path,
        tensor_parallel_size=spec.tensor_parallel_size,
        pipeline_parallel_size=spec.pipeline_parallel_size,
        world_size=ws,
        bundles=tuple(spec.bundles()),
        replicas=1,
    )
    if device == "cpu":
        return ask

    check_layout(spec, cluster)  # more GPUs than the cluster, or a tensor-parallel group split across nodes
    placement = replica_placement(spec, cluster.gpus_per_node)
    if placement.nodes > 1:
        notes.append(
            f"model {name!r}: one replica spans {placement.nodes} nodes (TP {spec.tensor_parallel_size} within a "
            f"node, PP {spec.pipeline_parallel_size} across nodes), placed with PACK"
        )
    ask = replace(ask, replicas=engine_replicas(spec, cluster), strategy=placement.strategy)
    if arch is None:
        notes.append(
            f"model {name!r} ({model_cfg.path}): architecture unknown, memory not checked and throughput taken as "
            "a medium model's (point `path` at a local folder with config.json to check it)"
        )
        return ask

    dtype_bytes = 4 if model_cfg.dtype == "float32" else 2
    weights = arch.weight_bytes(dtype_bytes) / ws / GIB
    # TP splits KV heads (replicating them when TP exceeds the kv heads); PP splits layers.
    kv_split = min(spec.tensor_parallel_size, arch.num_kv_heads) * spec.pipeline_parallel_size
    kv_per_token = arch.kv_bytes_per_token(2) / kv_split
    kv_seq = kv_per_token * model_cfg.max_model_len / GIB
    usable = gpu_mem * model_cfg.gpu_memory_utilization if gpu_mem is not None else None
    capacity = None
    if usable is not None:
        need = weights + a.engine_overhead_gib + kv_seq
        if need > usable:
            raise LimoError(
                f"model {name!r} ({model_cfg.path}, {arch.num_params() / 1e9:.1f}B params) does not fit "
                f"TP {spec.tensor_parallel_size} x PP {spec.pipeline_parallel_size}: weights {weights:.1f} + "
                f"overhead {a.engine_overhead_gib:.1f} + one {model_cfg.max_model_len:,}-token sequence's KV cache "
                f"{kv_seq:.1f} = {need:.1f} GiB per GPU > {model_cfg.gpu_memory_utilization} x {gpu_mem:.1f} = "
                f"{usable:.1f} GiB; raise tensor_parallel_size, or lower max_model_len"
            )
        capacity = int((usable - weights - a.engine_overhead_gib) * GIB / kv_per_token)
    return replace(
        ask,
        params=arch.num_params(),
        weights_gib_per_gpu=weights,
        kv_gib_per_gpu_per_seq=kv_seq,
        kv_capacity_tokens=capacity,
        memory_gib_per_gpu=usable,
    )


def _decode_rate(ask: EngineAsk, device: str, a: Assumptions) -> float:
    """Tokens/s of the whole stage: per-GPU rate x GPUs, or one CPU engine's rate."""
    if device == "cpu":
        return a.cpu_decode_tokens_per_s * ask.replicas
    return a.decode_tokens_per_s_per_gpu[_size_class(ask.params)] * ask.gpus


def _gen_stage(
    name: str,
    ask: EngineAsk,
    config: RunConfig,
    a: Assumptions,
    *,
    n_in: int,
    n_out: int,
    generations: int,
    length: int,
    detail: str,
) -> StagePlan:
    device = device_for(config)
    tokens = generations * length
    rate = _decode_rate(ask, device, a)
    wall = tokens / rate if rate > 0 else 0.0
    gpus = ask.gpus if device == "cuda" else 0
    gpu_hours = wall / 3600 * gpus
    return StagePlan(
        name=name,
        model=ask.name,
        gpus=gpus,
        actors=ask.replicas,
        problems_in=n_in,
        problems_out=n_out,
        generations=generations,
        tokens=tokens,
        tokens_per_s=rate,
        wall_s=wall,
        gpu_hours=gpu_hours,
        cost_usd=gpu_hours * config.cluster.gpu_hour_usd,
        detail=detail,
    )


def _cpu_stage(name: str, n_in: int, n_out: int, detail: str) -> StagePlan:
    return StagePlan(name, None, 0, 0, n_in, n_out, 0, 0, 0.0, 0.0, 0.0, 0.0, detail)


def _peak_tflops(gpu_type: str | None, a: Assumptions, notes: list[str]) -> float:
    if a.gpu_bf16_tflops is not None:
        return a.gpu_bf16_tflops
    tflops = gpu_bf16_tflops(gpu_type)
    if tflops is not None:
        return tflops
    h100 = GPUS["H100"].bf16_tflops
    notes.append(f"peak FLOP/s unknown for gpu_type={gpu_type!r}: training time assumes an H100 ({h100:.0f} TFLOP/s)")
    return h100


def _train_stage(
    config: RunConfig, samples: int, gpu_mem: float | None, a: Assumptions, notes: list[str]
) -> tuple[StagePlan, TrainMemoryEstimate | None]:
    t = config.train
    cluster = config.cluster
    total = cluster.num_nodes * cluster.gpus_per_node
    model_cfg = config.models[t.model]
    arch = arch_for(model_cfg.path)
    # A training sample is a prompt plus the selected chain (never longer than chains were allowed to be).
    chain = min(a.chain_response_tokens, config.curate.chains.sampling.max_tokens)
    seq = min(a.prompt_tokens + chain, t.max_seq_len)
    tokens = samples * t.epochs * seq
    detail = (
        f"{samples:,} samples x {t.epochs} epochs x ~{seq:,} tokens; ZeRO-{t.zero_stage}, max_seq_len {t.max_seq_len:,}"
    )

    if not t.use_gpu:
        notes.append("training on CPU workers: host memory is not checked")
        rate = a.cpu_train_tokens_per_s
        wall = tokens / rate if rate else 0.0
        return _train_row(t.model, 0, t.num_workers, samples, tokens, rate, wall, 0.0, detail), None

    if total == 0:
        raise LimoError("train.use_gpu is true but the cluster has no GPUs (cluster.gpus_per_node = 0)")
    if t.num_workers > total:
        raise LimoError(
            f"train.num_workers = {t.num_workers} GPU workers, but the cluster has {cluster.num_nodes} x "
            f"{cluster.gpus_per_node} = {total} GPUs"
        )
    memory = estimate_for_config(config, loss_impl=a.train_loss)
    if memory is None:
        notes.append(f"train model {t.model!r} ({model_cfg.path}): architecture unknown, memory not checked")
    elif gpu_mem is not None:
        memory.require_fit(gpu_mem)

    if a.train_tokens_per_s_per_gpu is not None:
        per_gpu = a.train_tokens_per_s_per_gpu
    else:
        params = arch.num_params() if arch else 0
        layers_h = arch.num_layers * arch.hidden_size if arch else 0
        # Forward: 2 FLOPs per parameter + causal attention 2*L*h*s; backward 2x forward; recompute 1x more.
        passes = 4 if t.gradient_checkpointing else 3
        flops_per_token = passes * (2 * params + 2 * layers_h * seq)
        peak = _peak_tflops(cluster.gpu_type, a, notes)
        per_gpu = a.train_mfu * peak * 1e12 / flops_per_token if flops_per_token else 0.0
    rate = per_gpu * t.num_workers
    wall = tokens / rate if rate else 0.0
    cost = wall / 3600 * t.num_workers * cluster.gpu_hour_usd
    return _train_row(t.model, t.num_workers, t.num_workers, samples, tokens, rate, wall, cost, detail), memory


def _train_row(
    model: str, gpus: int, workers: int, samples: int, tokens: int, rate: float, wall: float, cost: float, detail: str
) -> StagePlan:
    return StagePlan(
        name="train",
        model=model,
        gpus=gpus,
        actors=workers,
        problems_in=samples,
        problems_out=samples,
        generations=0,
        tokens=tokens,
        tokens_per_s=rate,
        wall_s=wall,
        gpu_hours=wall / 3600 * gpus,
        cost_usd=cost,
        detail=detail,
    )


def _eval_stage(config: RunConfig, student: EngineAsk, a: Assumptions, notes: list[str]) -> StagePlan:
    registry = BenchmarkRegistry.from_config(config.benchmarks)
    generations = items_total = 0
    for name in config.eval.benchmarks:
        bench = registry.get(name)
        items = bench.items
        if items is None:
            items = a.benchmark_items_default
            notes.append(f"benchmark {name!r}: item count not in the registry, assumed {items}")
        items_total += items
        generations += items * registry.decoding_for(name, config.eval).samples
    generations *= a.eval_checkpoints
    length = min(a.response_tokens.get(config.train.model, a.eval_response_tokens), config.eval.max_tokens)
    replicas = min(config.serve.max_replicas, student.replicas)
    ask = replace(student, replicas=replicas)
    stage = _gen_stage(
        "eval",
        ask,
        config,
        a,
        n_in=items_total,
        n_out=items_total,
        generations=generations,
        length=length,
        detail=f"{len(config.eval.benchmarks)} benchmarks x {a.eval_checkpoints} checkpoints, serve "
        f"{config.serve.min_replicas}..{replicas} replicas; {length:,} tokens per answer",
    )
    return stage


# ----------------------------------------------------------------------------------------------- printing


def _num(n: float) -> str:
    for unit, size in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n:.0f}"


def _duration(seconds: float) -> str:
    if seconds <= 0:
        return "-"
    if seconds < 3600:
        return f"{max(1, math.ceil(seconds / 60))} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def format_plan(plan: Plan) -> str:
    """The plan as text: stages, engines, the training memory plan, totals, assumptions and notes."""
    if plan.device == "cuda":
        mem = f", {plan.gpu_memory_gib:.1f} GiB each" if plan.gpu_memory_gib is not None else ""
        shape = (
            f"{plan.num_nodes} node(s) x {plan.gpus_per_node} GPU(s) = {plan.total_gpus} "
            f"{plan.gpu_type or 'GPUs'}{mem}, ${plan.gpu_hour_usd:.2f} per GPU-hour"
        )
    else:
        shape = f"{plan.num_nodes} node(s), CPU only (0 GPUs)"
    lines = [f"plan for {plan.config_name!r} on {shape}; pool of {plan.pool_size:,} problems", ""]

    header = (
        "stage",
        "model",
        "GPUs",
        "actors",
        "problems in -> out",
        "generations",
        "tokens",
        "tok/s",
        "wall",
        "GPU-h",
        "cost",
    )
    rows = [header]
    for s in plan.stages:
        rows.append(
            (
                s.name,
                s.model or "-",
                str(s.gpus),
                str(s.actors) if s.actors else "-",
                f"{s.problems_in:,} -> {s.problems_out:,}",
                f"{s.generations:,}" if s.generations else "-",
                _num(s.tokens) if s.tokens else "-",
                _num(s.tokens_per_s) if s.tokens_per_s else "-",
                _duration(s.wall_s),
                f"{s.gpu_hours:,.1f}" if s.gpu_hours else "-",
                f"${s.cost_usd:,.0f}" if s.cost_usd else "-",
            )
        )
    rows.append(
        (
            "total",
            "",
            "",
            "",
            "",
            "",
            _num(sum(s.tokens for s in plan.stages)),
            "",
            _duration(plan.wall_s),
            f"{plan.gpu_hours:,.1f}" if plan.gpu_hours else "-",
            f"${plan.cost_usd:,.0f}" if plan.cost_usd else "-",
        )
    )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for i, row in enumerate(rows):
        cells = [c.ljust(w) if j < 2 else c.rjust(w) for j, (c, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
        if i == 0 or i == len(rows) - 2:
            lines.append("  ".join("-" * w for w in widths))
    lines.append("")
    lines.append("stage details:")
    lines += [f"  {s.name}: {s.detail}" for s in plan.stages if s.detail]

    lines += ["", "engines (one per model; each replica is one Ray actor in a placement group of its bundles):"]
    for e in plan.engines:
        size = f"{e.params / 1e9:.1f}B params" if e.params else "size unknown"
        text = (
            f"  {e.name}: {e.model} ({size}), TP {e.tensor_parallel_size} x PP {e.pipeline_parallel_size} = "
            f"{e.world_size} per replica, bundles {describe_bundles(e.bundles)} ({e.strategy}), "
            f"up to {e.replicas} replica(s)"
        )
        if e.weights_gib_per_gpu is not None and e.memory_gib_per_gpu is not None:
            text += (
                f"; weights {e.weights_gib_per_gpu:.1f} GiB/GPU of {e.memory_gib_per_gpu:.1f} usable, KV cache for "
                f"~{_num(e.kv_capacity_tokens or 0)} tokens per replica"
            )
        lines.append(text)

    lines += ["", "train memory plan (per GPU):"]
    if plan.train_memory is None:
        lines.append("  not estimated (CPU training, or the model's architecture is unknown)")
    else:
        m = plan.train_memory
        verdict = m.fits(plan.gpu_memory_gib) if plan.gpu_memory_gib is not None else None
        lines.append(f"  {m.describe()}")
        lines.append(
            f"  model states {m.model_states_gib:.1f} GiB (DeepSpeed ZeRO-{m.zero_stage} estimator) | checkpoints "
            f"{m.checkpoints_gib:.1f} | recompute working set {m.recompute_gib:.1f} | loss peak {m.loss_gib:.1f}"
            + (f" | sdpa mask {m.attention_mask_gib:.1f}" if m.attention_mask_gib else "")
        )
        lines.append(
            f"  buffers {m.buffers_gib:.1f} | runtime {m.runtime_gib:.1f} | fragmentation {m.fragmentation_gib:.1f}"
            f" | total {m.total_gib:.1f} GiB"
            + (f" of {plan.gpu_memory_gib:.1f}: {'fits' if verdict else 'DOES NOT FIT'}" if verdict is not None else "")
            + f" | host memory per node (DeepSpeed) {m.cpu_gib_per_node:.0f} GiB"
        )
        # The loss implementation decides whether a long-sequence run fits: show the others beside it.
        others = [
            f"{impl} {estimate_train_memory(**{**m.inputs, 'loss_impl': impl}).total_gib:.1f} GiB"
            for impl in ("fused", "chunked", "hf")
            if impl != m.loss_impl
        ]
        lines.append(f"  with the {m.loss_impl} loss; other losses: {', '.join(others)}")

    lines += ["", "assumptions (limo_ray.plan.Assumptions):"]
    items = [f"{k}={_fmt_value(v)}" for k, v in asdict(plan.assumptions).items()]
    lines += _wrap(items, "  ")
    if plan.notes:
        lines += ["", "notes:"] + [f"  - {n}" for n in plan.notes]
    return "\n".join(lines)


def _fmt_value(value: object) -> str:
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_fmt_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, float) and value.is_integer():
        return f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1000:
        return f"{value:,}"
    return str(value)


def _wrap(items: list[str], indent: str, width: int = 116) -> list[str]:
    lines, cur = [], indent
    for item in items:
        if len(cur) + len(item) + 2 > width and cur.strip():
            lines.append(cur.rstrip(", "))
            cur = indent
        cur += item + ", "
    if cur.strip():
        lines.append(cur.rstrip(", "))
    return lines
