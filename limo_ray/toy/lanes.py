"""Train the toy world's four models in lanes.

The four models train in up to two "lanes", each a process with one torch thread: tiny matrices do not scale
across threads, and two OpenMP threads on a two-core machine that is busy with anything else spin-wait so
badly that a step was measured 10x slower than with one thread. A branch (strong_b, student) starts from its
parent's snapshot, which the parent writes to disk as it passes that step: the branch may run in the other
lane, as soon as the snapshot exists, while its parent goes on training.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import queue
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from limo_ray.toy import models
from limo_ray.toy.models import ModelSpec, count_parameters, save_model, train_model
from limo_ray.toy.progress import BuildProgress
from limo_ray.toy.spec import ToySpec
from limo_ray.toy.tokenizer import load_tokenizer

SNAPSHOT_DIR = ".snapshots"


def _chat_chars(m: ModelSpec) -> float:
    # Chain styles differ several-fold in length (a bare answer vs a self-checked chain): sample the mix.
    return sum(len(p) + len(r) for p, r in itertools.islice(models.training_chats(m, 0), 64)) / 64


def training_cost(m: ModelSpec) -> float:
    """Relative training time of a model's own steps (a branch pays only for the steps after its start)."""
    return (
        (m.steps - int(m.steps * m.branch_at))
        * m.batch_size
        * _chat_chars(m)
        * m.layers
        * m.hidden
        * (4 * m.hidden + 3 * m.intermediate)
    )


def assign_lanes(spec: ToySpec, count: int) -> list[list[ModelSpec]]:
    """Split the models into `count` lanes that finish at about the same time.

    Every lane trains its root models (no parent) first, so a branch waits only on a root that is already
    running: no two lanes can wait on each other. A branch then goes where it can start and finish earliest,
    counting the time its parent needs to reach the branch point.
    """
    specs = {m.name: m for m in spec.model_specs()}
    roots = [m for m in specs.values() if m.branch_of is None]
    branches = [m for m in specs.values() if m.branch_of is not None]
    for b in branches:
        if b.branch_of not in specs or specs[b.branch_of].branch_of is not None:
            raise ValueError(f"{b.name}: branch_of must name a model that is not itself a branch")
        if b.steps != specs[b.branch_of].steps:
            raise ValueError(f"{b.name}: a branch continues its parent's schedule: its steps must be its parent's")
    lanes: list[list[ModelSpec]] = [[] for _ in range(max(1, min(count, len(roots))))]
    loads = [0.0] * len(lanes)
    started: dict[str, float] = {}
    for root in sorted(roots, key=training_cost, reverse=True):
        i = loads.index(min(loads))
        lanes[i].append(root)
        started[root.name] = loads[i]
        loads[i] += training_cost(root)
    for branch in sorted(branches, key=training_cost, reverse=True):
        parent = specs[branch.branch_of or ""]
        ready = started[parent.name] + branch.branch_at * training_cost(parent)
        ends = [max(load, ready) + training_cost(branch) for load in loads]
        i = ends.index(min(ends))
        lanes[i].append(branch)
        loads[i] = ends[i]
    return lanes


def _snapshot_path(out: Path, parent: str, step: int) -> Path:
    return out / SNAPSHOT_DIR / f"{parent}-{step}.pt"


def _save_snapshot(out: Path, parent: str, state: dict[str, Any]) -> None:
    import torch

    path = _snapshot_path(out, parent, state["step"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # a reader sees a whole snapshot or none


def _wait_for_snapshot(out: Path, parent: str, step: int, alive: Callable[[], None]) -> dict[str, Any]:
    import torch

    path = _snapshot_path(out, parent, step)
    while not path.exists():
        alive()
        time.sleep(0.5)
    return torch.load(path, weights_only=False)


def _train_lane(
    lane: list[ModelSpec],
    spec: ToySpec,
    seed: int,
    tok_dir: Path,
    out: Path,
    held_out: set[str],
    report: Callable[[tuple[Any, ...]], None],
    alive: Callable[[], None] = lambda: None,
) -> None:
    """Train a lane's models in order and save each; `report` gets ("step", name, loss) and ("done", name, stats)."""
    tok = load_tokenizer(tok_dir)
    for model_spec in lane:
        name = model_spec.name
        branch_steps = {int(b.steps * b.branch_at) for b in spec.model_specs() if b.branch_of == name}
        start = None
        if model_spec.branch_of is not None:
            start = _wait_for_snapshot(out, model_spec.branch_of, int(model_spec.steps * model_spec.branch_at), alive)
        run = train_model(
            model_spec,
            tok,
            seed,
            exclude=held_out,
            snapshot_steps=branch_steps,
            on_snapshot=lambda state, name=name: _save_snapshot(out, name, state),
            start=start,
            on_step=lambda step, loss, name=name: report(("step", name, loss)),
        )
        save_model(run.model, tok, out / name)
        stats = {
            "parameters": count_parameters(run.model),
            "seconds": round(run.seconds, 1),
            "tokens": run.tokens,
            "tokens_per_s": round(run.tokens / max(run.seconds, 1e-9)),
            "first_loss": round(run.losses[0], 4) if run.losses else None,
            "final_loss": round(sum(run.losses[-20:]) / max(1, len(run.losses[-20:])), 4),
        }
        report(("done", name, stats))


def _lane_process(
    lane: list[ModelSpec], spec: ToySpec, seed: int, tok_dir: Path, out: Path, held_out: set[str], channel: Any
) -> None:
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # the lanes already fill the cores
    import torch
    from transformers.utils import logging as hf_logging

    torch.set_num_threads(1)
    hf_logging.disable_progress_bar()  # this process only: one bar (the parent's) is enough
    parent = multiprocessing.parent_process()
    sent = 0

    def alive() -> None:
        # A killed build must not leave lanes training for nobody (daemon children outlive a SIGKILLed parent).
        if parent is not None and not parent.is_alive():
            raise SystemExit(1)

    def report(message: tuple[Any, ...]) -> None:
        nonlocal sent
        sent += 1
        if sent % 50 == 0:
            alive()
        channel.put(message)

    try:
        _train_lane(lane, spec, seed, tok_dir, out, held_out, report, alive)
        channel.put(("lane_done", "", None))
    except BaseException:
        channel.put(("error", "", traceback.format_exc()))


def train_models(
    spec: ToySpec, seed: int, tok_dir: Path, out: Path, held_out: set[str], bar: BuildProgress
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    seen_loss: dict[str, float] = {}

    def on_message(message: tuple[Any, ...]) -> None:
        kind, name, payload = message
        if kind == "step":
            bar.update(1)
            seen_loss[name] = payload
            bar.set_postfix_str(" ".join(f"{n} {v:.3f}" for n, v in seen_loss.items()), refresh=False)
        elif kind == "done":
            results[name] = payload

    lanes = assign_lanes(spec, min(2, os.cpu_count() or 1))
    if len(lanes) == 1:
        import torch

        previous = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            _train_lane(lanes[0], spec, seed, tok_dir, out, held_out, on_message)
        finally:
            torch.set_num_threads(previous)
        return results

    ctx = multiprocessing.get_context("spawn")  # never fork a process that may hold Ray or vLLM threads
    channel = ctx.Queue()
    procs = [
        ctx.Process(target=_lane_process, args=(lane, spec, seed, tok_dir, out, held_out, channel), daemon=True)
        for lane in lanes
    ]
    for proc in procs:
        proc.start()
    try:
        running = len(procs)
        while running:
            try:
                message = channel.get(timeout=2.0)
            except queue.Empty:
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(f"a toy training process died (exit code {dead[0].exitcode})") from None
                continue
            if message[0] == "error":
                raise RuntimeError(f"toy model training failed:\n{message[2]}")
            if message[0] == "lane_done":
                running -= 1
            else:
                on_message(message)
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
            proc.join()
        channel.close()
        channel.join_thread()
    return results
