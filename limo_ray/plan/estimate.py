"""The plan's numbers: per stage, GPUs and actors, problems in and out, generations, tokens, wall time, GPU-hours
and cost, from the run config, the engines' sizing (`plan.engines`) and the `Assumptions`. Text is `plan.render`'s."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from limo_ray.architectures import arch_for
from limo_ray.benchmarks.registry import BenchmarkRegistry
from limo_ray.config import RunConfig, SamplingConfig, StrongFilterConfig
from limo_ray.engine.spec import device_for
from limo_ray.errors import LimoError
from limo_ray.hardware import GPUS, gpu_bf16_tflops, gpu_memory_gib
from limo_ray.plan.assumptions import DEFAULT_POOL_SIZE, Assumptions
from limo_ray.plan.engines import EngineAsk, decode_rate, engine_ask
from limo_ray.train.memory import TrainMemoryEstimate, estimate_for_config

__all__ = ["Plan", "StagePlan", "make_plan"]


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
    heading: str = ""  # what the plan is for, when not the whole run (`limo plan --ablate STUDY`)

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
            engines[name] = engine_ask(config, name, device, gpu_mem, a, notes)
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
    strong_gens = _strong_generations(hard, cur.strong, a)
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
    stages += _chain_stages("curate", config, a, engine, balanced, cur.chains.per_model)

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


def _strong_generations(problems: int, strong: StrongFilterConfig, a: Assumptions) -> int:
    """Samples the strong filter draws: every problem its first round, those not settled by then all `samples`."""
    return round(problems * (a.strong_early_stop * strong.rounds[0] + (1 - a.strong_early_stop) * strong.samples))


def _chain_stages(
    prefix: str,
    config: RunConfig,
    a: Assumptions,
    engine: Callable[[str], EngineAsk],
    problems: int,
    per_model: int,
    detail: str = "",
) -> list[StagePlan]:
    """One row per chain model: `per_model` chains for each of `problems`."""
    chains = config.curate.chains
    stages = []
    for name in chains.models:
        length = _length(name, a.chain_response_tokens, chains.sampling, a)
        stages.append(
            _gen_stage(
                f"{prefix}.chains[{name}]",
                engine(name),
                config,
                a,
                n_in=problems,
                n_out=problems,
                generations=problems * per_model,
                length=length,
                detail=f"{per_model} chains per problem{detail}; {length:,} tokens per chain",
            )
        )
    return stages


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
    rate = decode_rate(ask, device, a)
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
