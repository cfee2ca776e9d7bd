"""The plan as text (`limo plan`): the stage table, engines, the training memory plan, assumptions and notes."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict

from limo_ray.engine.placement import describe_bundles
from limo_ray.plan.estimate import Plan
from limo_ray.train.memory import estimate_train_memory

__all__ = ["format_plan"]


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
    heading = plan.heading or f"plan for {plan.config_name!r}"
    lines = [f"{heading} on {shape}; pool of {plan.pool_size:,} problems", ""]

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
