"""What the bench scripts share: a bare vLLM engine run in its own process, interleaved rounds, and spreads.

A bare engine runs in a child process so that it owns the machine while it runs, as a user's standalone
`vllm.LLM` script would, and nothing of it (threads, memory) lingers into the other side's round. By default it
computes on the threads the engine actor gets (like with like); `capped=False` leaves vLLM its default (every
core), the figure a user's own script would see. The child writes its result to a file: vLLM's shutdown may
still print to stdout after the last line we care about.

    python bench/harness.py JOB_JSON RESULT_JSON      # the child side (the scripts start it themselves)
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

Round = Callable[[], dict[str, float]]  # -> {"tokens": ..., "seconds": ...}


def engine_threads(spec: Any) -> int:
    """The compute threads an engine actor for `spec` gets: Ray gives an actor as many as the CPUs it reserves."""
    return max(1, int(spec.actor_options()["num_cpus"]))


def write_bare_job(
    spec: Any,
    prompts: Sequence[str],
    sampling: dict[str, Any],
    per_prompt: Sequence[dict[str, Any]] | None = None,
    capped: bool = True,
) -> Path:
    """A job file for `bare_round`: the engine spec (an `EngineSpec`), the prompts and vLLM sampling params
    (`per_prompt`: overrides for each prompt, e.g. its own `max_tokens`); `capped`: compute on the engine
    actor's thread count, else on vLLM's default (every core)."""
    job = Path(tempfile.mkdtemp(prefix="limo-bench-")) / "job.json"
    body = {"spec": dataclasses.asdict(spec), "prompts": list(prompts), "sampling": sampling, "capped": capped}
    if per_prompt is not None:
        body["per_prompt"] = list(per_prompt)
    job.write_text(json.dumps(body))
    return job


def bare_round(job_file: Path) -> dict[str, float]:
    """Run the job on one bare `vllm.LLM` in a child process; timed from engine ready to its last output.
    Returns tokens, seconds and the compute threads it ran on."""
    result_file = job_file.with_name("result.json")
    out = subprocess.run([sys.executable, __file__, str(job_file), str(result_file)], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"the bare engine run failed:\n{out.stdout[-3000:]}{out.stderr[-3000:]}")
    return json.loads(result_file.read_text())


def _bare_child(job_file: str, result_file: str) -> None:
    import torch
    from vllm import LLM, SamplingParams

    from limo_ray.engine import EngineSpec

    job = json.loads(Path(job_file).read_text())
    spec = EngineSpec(**job["spec"])
    os.environ.update(spec.env())
    if job["capped"]:
        # With the engine core in this process, vLLM would otherwise compute on every core, and a comparison
        # with the engine actor would be of cores, not of overheads.
        torch.set_num_threads(engine_threads(spec))
    llm = LLM(**spec.llm_kwargs())
    start = time.time()
    per_prompt = job.get("per_prompt")
    params = (
        [SamplingParams(**{**job["sampling"], **row}) for row in per_prompt]
        if per_prompt is not None
        else SamplingParams(**job["sampling"])
    )
    # Every request at once: vLLM's continuous batching keeps the engine full until the work is done.
    outputs = llm.generate(job["prompts"], params, use_tqdm=False)
    seconds = time.time() - start
    tokens = sum(len(c.token_ids) for o in outputs for c in o.outputs)
    threads = torch.get_num_threads()
    Path(result_file).write_text(json.dumps({"tokens": tokens, "seconds": seconds, "threads": threads}))


def interleaved_rounds(
    sides: Mapping[str, Round], repeats: int, warm_up: bool = True
) -> Iterator[dict[str, dict[str, float]]]:
    """One warm-up round of each side (unless `warm_up` is False), then `repeats` cycles that run every side once,
    in the order given (A B A B ... for two sides); yields each cycle's results by side name."""
    if warm_up:
        for side in sides.values():
            side()
    for _ in range(repeats):
        yield {name: side() for name, side in sides.items()}


def spread(values: Sequence[float], digits: int = 0) -> str:
    """`median (min..max)` of a side's figures over the pairs."""
    return f"{statistics.median(values):,.{digits}f} ({min(values):,.{digits}f}..{max(values):,.{digits}f})"


def interleaved_pairs(baseline: Round, candidate: Round, pairs: int, names: tuple[str, str]) -> list[float]:
    """One warm-up pair, then `pairs` pairs (baseline, candidate, baseline, ...): prints each pair and the
    median tokens/s of each side; returns the per-pair candidate/baseline tokens-per-second ratios."""
    ratios, rates = [], {name: [] for name in names}
    cycles = interleaved_rounds({names[0]: baseline, names[1]: candidate}, pairs)
    for i, cycle in enumerate(cycles):
        a, b = cycle[names[0]], cycle[names[1]]
        rate_a, rate_b = a["tokens"] / a["seconds"], b["tokens"] / b["seconds"]
        rates[names[0]].append(rate_a)
        rates[names[1]].append(rate_b)
        ratios.append(rate_b / rate_a)
        print(
            f"pair {i + 1}: {names[0]} {rate_a:7.0f} tok/s ({a['tokens']:.0f} tokens, {a['seconds']:.1f}s)  "
            f"{names[1]} {rate_b:7.0f} tok/s ({b['tokens']:.0f} tokens, {b['seconds']:.1f}s)  ratio {ratios[-1]:.3f}",
            flush=True,
        )
    print("median tokens/s: " + ", ".join(f"{name} {statistics.median(r):.0f}" for name, r in rates.items()))
    return ratios


if __name__ == "__main__":
    _bare_child(*sys.argv[1:3])
