"""`limo run` across several Ray nodes, and a whole node lost in curation, in training and in evaluation.

A local multi-node Ray cluster (`ray.cluster_utils.Cluster`: a head with no CPUs, as on KubeRay, and three
worker nodes of one CPU each, so the two Ray Train workers, the engine actors and the Serve replicas must spread
over nodes) runs one `limo run` of the tiny preset on the test-size toy world, as a user would with
`cluster.address` pointing at the head. Nothing is replaced by a stand-in: the engines are vLLM, training is
DeepSpeed ZeRO-3 on Ray Train, eval goes through Ray Serve.

While the job runs, the test removes a worker node (its raylet and every process on it, abruptly) three times
and adds a fresh node back each time, as an autoscaler replacing a reclaimed spot instance would:

1. mid-curation: the node holding the strong filter's engine actor, once that stage has stored generations;
2. mid-training: a node holding a Ray Train worker, once a checkpoint is registered (train.max_failures=1: Ray
   Train restarts the worker group from it);
3. mid-eval: a node holding a Serve replica, once answers are being cached (Serve starts the replica again
   elsewhere; the evaluator retries what failed).

The job must finish in the same driver, with every problem decided once, no finished generation asked again,
no training step logged twice and no answer stored twice. Where each piece ran is read from the job's own
records (stage manifests and the training manifest name the Ray node ids).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from limo_ray.curate.generations import GenerationStore, stored_attempts
from limo_ray.curate.stage import read_decisions
from limo_ray.engine.actor import EngineActor
from limo_ray.runfolder import Manifest
from tests.fixtures import LocalCluster, NodeLoss, eval_samples, registered_train_steps, strong_filter_requests

pytestmark = pytest.mark.integration

POOL_SIZE = 60
EVAL_ITEMS = 100  # the test-size toy benchmark
STUDENTS = ("student-base", "student-curated", "student-random")
SETTINGS = [
    "toy.size=test",
    'curate.chains.models=["strong"]',
    "curate.balance.size=12",
    "curate.select.size=8",
    "train.epochs=2",
    "train.packing=false",
    "train.micro_batch_size=1",
    "train.global_batch_size=2",  # 4 steps per epoch on 8 samples, a checkpoint at each epoch's end
    "train.max_failures=1",  # a worker group lost with its node starts again from the last checkpoint
    "cluster.num_nodes=3",
    "cluster.cpus_per_node=1",
    "eval.concurrency=4",
    "eval.retries=8",  # backoff long enough (about a minute) for Serve to start a lost replica on another node
]


@dataclass
class MultiNodeJob:
    run_dir: Path
    log: Path
    returncode: int
    seconds: float
    losses: list[NodeLoss] = field(default_factory=list)
    nodes_seen: set[str] = field(default_factory=set)


def _wait(condition: Callable[[], bool], what: str, process: subprocess.Popen[str], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"the run ended before {what}:\n{log.read_text()[-4000:]}"
        assert time.monotonic() < deadline, f"no {what} within {timeout} s:\n{log.read_text()[-4000:]}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MultiNodeJob]:
    from limo_ray.toy import build_toy_world

    folder = tmp_path_factory.mktemp("multinode")
    pool = folder / "pool.jsonl"
    lines = build_toy_world("test").pool.read_text(encoding="utf-8").splitlines()[:POOL_SIZE]
    pool.write_text("".join(line + "\n" for line in lines))
    run_dir = folder / "run"
    with LocalCluster(worker_nodes=3, cpus_per_node=1) as cluster:
        settings = [*SETTINGS, f"cluster.address={cluster.address}", f"curate.pool.sources={json.dumps([str(pool)])}"]
        argv = [sys.executable, "-m", "limo_ray.cli", "run", "--config", "tiny", "--run-dir", str(run_dir)]
        argv += [arg for setting in settings for arg in ("--set", setting)]
        log = folder / "run.log"
        began = time.monotonic()
        losses: list[NodeLoss] = []
        seen: set[str] = set()
        with log.open("w") as out:
            process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, text=True)
        try:
            generations = run_dir / "curate" / "strong_filter" / "generations"
            _wait(lambda: any(generations.glob("part-*.parquet")), "strong-filter generations", process, log, 900)
            losses.append(cluster.lose_node_of("strong-filter engine", EngineActor.__name__))

            train_dir = run_dir / "train"
            _wait(lambda: bool(registered_train_steps(train_dir)), "a training checkpoint", process, log, 900)
            losses.append(cluster.lose_node_of("Ray Train worker", "RayTrainWorker"))

            def answering() -> bool:
                return len(eval_samples(run_dir)) >= 20

            _wait(answering, "cached eval answers", process, log, 900)
            losses.append(cluster.lose_node_of("Serve replica", "ServeReplica"))
            returncode = process.wait(timeout=900)
        finally:
            if process.poll() is None:
                process.kill()
            seen = cluster.nodes_ever
        yield MultiNodeJob(run_dir, log, returncode, time.monotonic() - began, losses, seen)


def test_limo_run_spans_nodes_and_finishes_after_three_node_losses(job: MultiNodeJob, report) -> None:
    assert job.returncode == 0, job.log.read_text()[-4000:]
    assert [loss.what for loss in job.losses] == ["strong-filter engine", "Ray Train worker", "Serve replica"]
    train = Manifest.read(job.run_dir / "train")
    assert train is not None and train.complete
    worker_nodes = set(train.extra["worker_nodes"].values())
    assert len(worker_nodes) == 2  # one CPU per node: the two training workers are on two nodes
    engine_nodes = _engine_nodes(job.run_dir)
    assert len(engine_nodes | worker_nodes) >= 3
    assert (engine_nodes | worker_nodes) <= job.nodes_seen
    summary = json.loads((job.run_dir / "summary.json").read_text())
    assert set(summary["scores"]) == set(STUDENTS)
    report(
        f"limo run on head + 3 one-CPU nodes, 3 nodes lost and replaced: {job.seconds:.0f}s; engines on "
        f"{len(engine_nodes)} node(s), training workers on {sorted(n[:8] for n in worker_nodes)}"
    )


def test_a_node_lost_mid_curation_loses_and_repeats_nothing(job: MultiNodeJob, report) -> None:
    assert job.returncode == 0
    lost = job.losses[0]
    generations = job.run_dir / "curate" / "strong_filter" / "generations"
    stored = [(r["problem_id"], r["attempt_index"]) for r in stored_attempts(generations)]
    assert len(stored) == len(set(stored))  # no attempt stored twice
    errors = [r for r in GenerationStore(generations).rows.values() if r["error"]]
    assert errors == []
    requested = strong_filter_requests(job.run_dir, after_ns=0)
    assert len(requested) == len(set(requested))  # no generation asked for twice
    strong = Manifest.read(job.run_dir / "curate" / "strong_filter")
    assert strong is not None and strong.complete
    nodes = {n for t in strong.extra["timings"] for n in t["engine_nodes"]}
    assert lost.node_id in nodes and len(nodes) >= 2  # the engine ran on the lost node, then on another
    ledger = pq.read_table(job.run_dir / "curate" / "ledger.parquet").to_pylist()
    ids = [row["problem_id"] for row in ledger]
    assert len(ids) == len(set(ids)) == POOL_SIZE  # every problem decided once
    decisions = read_decisions(job.run_dir / "curate" / "strong_filter" / "decisions.parquet")
    assert len({d["problem_id"] for d in decisions}) == len(decisions) == strong.rows_in
    reasons = Counter(d["reason"] for d in decisions)
    assert reasons["engine_error"] == reasons["undecided"] == 0
    report(
        f"mid-curation: {strong.rows_in} problems decided by the strong filter, {len(requested)} generations "
        f"requested, 0 twice, 0 error rows"
    )


def test_a_node_lost_mid_training_restarts_from_the_checkpoint_and_logs_each_step_once(
    job: MultiNodeJob, report
) -> None:
    assert job.returncode == 0
    lost = job.losses[1]
    train = Manifest.read(job.run_dir / "train")
    assert train is not None
    steps = [json.loads(line)["step"] for line in (job.run_dir / "train" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, train.extra["steps"] + 1))  # each step once: none lost, none logged twice
    assert train.extra["resumed_from_step"] > 0  # the restarted group began at the registered checkpoint
    assert lost.node_id not in train.extra["worker_nodes"].values()
    report(
        f"mid-training: {train.extra['steps']} steps logged once each, restarted from step "
        f"{train.extra['resumed_from_step']} on {sorted(n[:8] for n in train.extra['worker_nodes'].values())}"
    )


def test_a_node_lost_mid_eval_is_retried_with_each_answer_stored_once(job: MultiNodeJob, report) -> None:
    assert job.returncode == 0
    samples = eval_samples(job.run_dir)
    keys = [row["key"] for row in samples]
    assert len(keys) == len(set(keys)) == EVAL_ITEMS * len(STUDENTS)  # none lost, none answered twice
    assert {row["checkpoint"] for row in samples} == set(STUDENTS)
    report(f"mid-eval: {len(keys)} answers stored, 0 twice")


def _engine_nodes(run_dir: Path) -> set[str]:
    nodes: set[str] = set()
    for stage in ("weak_filter", "strong_filter", "chains"):
        manifest = Manifest.read(run_dir / "curate" / stage)
        assert manifest is not None
        nodes |= {n for t in manifest.extra["timings"] for n in t["engine_nodes"]}
    return nodes
