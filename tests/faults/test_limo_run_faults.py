"""`limo run` across several Ray nodes, through the failures a cluster has: nodes lost mid-stage, the driver killed.

A local multi-node Ray cluster (`ray.cluster_utils.Cluster`: a head with no CPUs, as on KubeRay, and three worker
nodes of one CPU each in two pools: one node declares the custom resource `engine_node`, two declare
`train_node`) runs one `limo run` of the tiny preset on the test-size toy world, with `cluster.address` pointing
at the head as a user's would. `cluster.node_resources` asks for those resources, so the engine actors can only
run on the engine pool and the two Ray Train workers only on the training pool (one per node: one CPU each);
the Serve replicas ask for none and spread over all three. Nothing is replaced by a stand-in: the engines are
vLLM, training is DeepSpeed ZeRO-3 on Ray Train, eval goes through Ray Serve.

One job, small enough for the test budget (a 60-problem pool, one chain model, three epochs of two-sample steps,
so training checkpoints at each epoch's end), meets six faults. In each of three stages a worker node is removed
abruptly (its raylet and every process on it) and a fresh node joins, as an autoscaler replacing a reclaimed spot
instance would; then the driver is SIGKILLed and the same command is run again:

1. curation: the node holding the strong filter's engine actor, once that stage has stored generations; the
   pool replaces the actor and sends its batches again; then the driver is killed mid-stage;
2. training: a node holding a Ray Train worker, once a checkpoint is registered (train.max_failures=1: Ray Train
   restarts the worker group from it); the driver is killed after the restarted group registers another;
3. evaluation: the node holding a Serve replica, once answers are being cached (Serve starts the replica again
   on a live node; the evaluator retries); the driver is killed mid-eval;

then the job is run to the end, and once more: a finished job only rewrites its summary. The checks: every
problem decided once, no finished generation asked again, no attempt stored twice, no training step logged twice
or lost, no answer stored twice, finished stages skipped, and where each piece ran (the stage manifests and the
training manifest record Ray node ids).
"""

from __future__ import annotations

import json
import os
import re
import signal
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
NODE_POOLS = [{"engine_node": 1.0}, {"train_node": 1.0}, {"train_node": 1.0}]
EVAL_ITEMS = 100  # the test-size toy benchmark
STUDENTS = ("student-base", "student-curated", "student-random")
SETTINGS = [
    "toy.size=test",
    'curate.chains.models=["strong"]',
    # Eight chains per problem: the strong filter keeps problems it solves 1-3 times in 8, so with fewer, too few
    # keep a correct chain for a dataset of several training steps.
    "curate.chains.per_model=8",
    "curate.balance.size=16",
    "curate.select.size=12",
    "train.epochs=3",
    "train.packing=false",
    "train.micro_batch_size=1",
    "train.global_batch_size=2",  # 1 per micro-batch x 2 workers: 6 steps per epoch on 12 samples
    "train.max_failures=1",  # a worker group lost with its node starts again from the last checkpoint
    "cluster.num_nodes=3",
    "cluster.cpus_per_node=1",
    # The pools (LocalCluster's `node_resources`): engines and training workers on nodes of their own.
    'cluster.node_resources.engines={"engine_node": 0.01}',
    'cluster.node_resources.train={"train_node": 0.01}',
    "eval.concurrency=8",
    "eval.retries=8",  # backoff long enough (about a minute) for Serve to start a lost replica on another node
]
CURATE_STAGES = ("ingest", "dedup", "decontaminate", "weak_filter")
# The steps of `limo run` that record whether they were skipped (limo_ray/run.py: run_all).
SKIPPABLE_STEPS = ("curate", "train", "baseline_curate", "baseline_train")


class Job:
    """`limo run` against the cluster, in its own session, output to a numbered log per attempt."""

    def __init__(self, folder: Path, pool: Path, address: str) -> None:
        self.folder, self.run_dir = folder, folder / "run"
        settings = [*SETTINGS, f"cluster.address={address}", f"curate.pool.sources={json.dumps([str(pool)])}"]
        self.argv = [sys.executable, "-m", "limo_ray.cli", "run", "--config", "tiny", "--run-dir", str(self.run_dir)]
        self.argv += [arg for setting in settings for arg in ("--set", setting)]
        self.attempt = 0
        self.process: subprocess.Popen[str] | None = None
        self.log = folder / "attempt-0.log"

    def start(self) -> None:
        self.attempt += 1
        self.log = self.folder / f"attempt-{self.attempt}.log"
        with self.log.open("w") as out:  # a file, not a pipe: nobody reads a pipe while the test polls
            self.process = subprocess.Popen(
                self.argv, stdout=out, stderr=subprocess.STDOUT, text=True, start_new_session=True
            )

    def wait_for(self, ready: Callable[[], bool], what: str, timeout: float = 900) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while not ready():
            assert self.process.poll() is None, f"the run ended before {what}:\n{self.log.read_text()[-4000:]}"
            assert time.monotonic() < deadline, f"no {what} within {timeout} s:\n{self.log.read_text()[-4000:]}"
            time.sleep(0.1)

    def kill(self) -> int:
        """SIGKILL the driver (a user's Ctrl-\\, a preempted head pod); returns the time of the kill in ns."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        return time.time_ns()

    def finish(self, timeout: float = 900) -> str:
        self.start()
        assert self.process is not None
        assert self.process.wait(timeout=timeout) == 0, self.log.read_text()[-4000:]
        return self.log.read_text()


@dataclass
class Faults:
    """What the job went through, and what the test saw at each kill."""

    run_dir: Path
    losses: list[NodeLoss] = field(default_factory=list)
    engine_pool: set[str] = field(default_factory=set)  # every node that declared engine_node, lost ones included
    train_pool: set[str] = field(default_factory=set)
    seconds: float = 0.0
    phase_seconds: dict[str, float] = field(default_factory=dict)
    # 1. curation
    killed_in_curate_ns: int = 0
    stored_at_curate_kill: set[tuple[str, int]] = field(default_factory=set)
    strong_complete_at_kill: bool = False
    manifests_before_second: dict[str, int] = field(default_factory=dict)
    # 2. training
    second_log: str = ""
    registered_before_loss: int = 0
    registered_at_kill: int = 0
    train_complete_at_kill: bool = False
    curated_manifests: dict[str, int] = field(default_factory=dict)
    # 3. evaluation
    third_log: str = ""
    answered_at_kill: set[str] = field(default_factory=set)
    # 4-5. to the end, and once more
    final_log: str = ""
    again_log: str = ""
    manifests_before_last: dict[str, int] = field(default_factory=dict)
    manifests_after_last: dict[str, int] = field(default_factory=dict)


def _mtimes(run_dir: Path) -> dict[str, int]:
    return {str(p.relative_to(run_dir)): p.stat().st_mtime_ns for p in run_dir.rglob("manifest.json")}


def _stored(generations: Path) -> set[tuple[str, int]]:
    return {(r["problem_id"], r["attempt_index"]) for r in GenerationStore(generations).rows.values()}


@pytest.fixture(scope="module")
def faults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Faults]:
    from limo_ray.toy import build_toy_world

    folder = tmp_path_factory.mktemp("faults")
    pool = folder / "pool.jsonl"
    lines = build_toy_world("test").pool.read_text(encoding="utf-8").splitlines()[:POOL_SIZE]
    pool.write_text("".join(line + "\n" for line in lines))
    began = time.monotonic()
    with LocalCluster(NODE_POOLS, cpus_per_node=1) as cluster:
        job = Job(folder, pool, cluster.address)
        seen = Faults(job.run_dir)
        run_dir = job.run_dir
        try:
            # 1. curation: lose the engine's node mid-strong-filter, let the replacement work, kill the driver.
            generations = run_dir / "curate" / "strong_filter" / "generations"
            job.start()
            job.wait_for(lambda: any(generations.glob("part-*.parquet")), "strong-filter generations")
            before_loss = len(_stored(generations))
            seen.losses.append(cluster.lose_node_of("strong-filter engine", EngineActor.__name__))
            job.wait_for(lambda: len(_stored(generations)) > before_loss, "generations after the lost node")
            seen.killed_in_curate_ns = job.kill()
            seen.stored_at_curate_kill = _stored(generations)
            seen.strong_complete_at_kill = Manifest.read(run_dir / "curate" / "strong_filter") is not None
            seen.manifests_before_second = _mtimes(run_dir)
            seen.phase_seconds["curation"] = time.monotonic() - began

            # 2. training: lose a worker's node after a checkpoint; kill once the restarted group registers another.
            train_dir = run_dir / "train"
            job.start()
            job.wait_for(lambda: bool(registered_train_steps(train_dir)), "a training checkpoint")
            seen.registered_before_loss = max(registered_train_steps(train_dir))
            seen.losses.append(cluster.lose_node_of("Ray Train worker", "RayTrainWorker"))
            job.wait_for(
                lambda: max(registered_train_steps(train_dir)) > seen.registered_before_loss,
                "a checkpoint of the restarted worker group",
            )
            job.kill()
            seen.second_log = job.log.read_text()
            seen.registered_at_kill = max(registered_train_steps(train_dir))
            seen.train_complete_at_kill = Manifest.read(train_dir) is not None
            seen.curated_manifests = {k: v for k, v in _mtimes(run_dir).items() if k.startswith("curate/")}
            seen.phase_seconds["training"] = time.monotonic() - began

            # 3. evaluation: lose a replica's node once answers are cached; kill once more are.
            job.start()
            job.wait_for(lambda: len(eval_samples(run_dir)) >= 20, "cached eval answers")
            at_loss = len(eval_samples(run_dir))
            seen.losses.append(cluster.lose_node_of("Serve replica", "ServeReplica"))
            job.wait_for(lambda: len(eval_samples(run_dir)) >= at_loss + 20, "eval answers after the lost node")
            job.kill()
            seen.third_log = job.log.read_text()
            seen.answered_at_kill = {row["key"] for row in eval_samples(run_dir)}
            seen.phase_seconds["evaluation"] = time.monotonic() - began

            # 4-5. to the end; then a finished job, run again.
            seen.final_log = job.finish()
            seen.phase_seconds["to the end"] = time.monotonic() - began
            seen.manifests_before_last = _mtimes(run_dir)
            seen.again_log = job.finish(timeout=300)
            seen.manifests_after_last = _mtimes(run_dir)
        finally:
            if job.process is not None and job.process.poll() is None:
                os.killpg(job.process.pid, signal.SIGKILL)
            seen.engine_pool, seen.train_pool = cluster.nodes_with("engine_node"), cluster.nodes_with("train_node")
    seen.seconds = time.monotonic() - began
    yield seen


def test_limo_run_spans_nodes_and_finishes_through_three_lost_nodes_and_three_killed_drivers(
    faults: Faults, report
) -> None:
    assert [loss.what for loss in faults.losses] == ["strong-filter engine", "Ray Train worker", "Serve replica"]
    train = Manifest.read(faults.run_dir / "train")
    assert train is not None and train.complete
    assert len(set(train.extra["worker_nodes"].values())) == 2  # one CPU per node: two workers on two nodes
    worker_nodes, engine_nodes = _worker_nodes(faults.run_dir), _engine_nodes(faults.run_dir)
    # cluster.node_resources kept each kind of work on its pool: no node ran both an engine and a worker.
    assert engine_nodes and engine_nodes <= faults.engine_pool
    assert worker_nodes <= faults.train_pool and engine_nodes.isdisjoint(worker_nodes)
    summary = json.loads((faults.run_dir / "summary.json").read_text())
    assert set(summary["scores"]) == set(STUDENTS)
    assert Path(summary["files"]["checkpoint"], "config.json").is_file()
    report(
        f"limo run on a head + 3 one-CPU nodes, 3 nodes lost and replaced, the driver killed 3 times: "
        f"{faults.seconds:.0f}s ({_phases(faults)}); engines on {sorted(n[:8] for n in engine_nodes)} (engine "
        f"pool), training workers on {sorted(n[:8] for n in worker_nodes)} (training pool)"
    )


def test_curation_loses_and_repeats_nothing_through_a_lost_node_and_a_killed_driver(faults: Faults, report) -> None:
    run_dir, lost = faults.run_dir, faults.losses[0]
    assert not faults.strong_complete_at_kill, "the strong filter finished before the kill: nothing was tested"
    assert faults.stored_at_curate_kill
    second = faults.second_log
    for stage in CURATE_STAGES:  # finished before the first kill: skipped, not redone
        assert f"[curate] {stage}: complete, skipped" in second
        key = f"curate/{stage}/manifest.json"
        assert (run_dir / key).stat().st_mtime_ns == faults.manifests_before_second[key]
    requested_again = strong_filter_requests(run_dir, after_ns=faults.killed_in_curate_ns)
    assert faults.stored_at_curate_kill & set(requested_again) == set()  # no finished generation asked again
    requested = strong_filter_requests(run_dir, after_ns=0)
    requested_before = Counter(requested) - Counter(requested_again)
    # Within each driver nothing is asked twice (the batches the lost engine held are sent again, not asked
    # again); across the kill only what was in flight, never finished, is asked again (checked above).
    assert max(requested_before.values()) == 1 and len(requested_again) == len(set(requested_again))
    generations = run_dir / "curate" / "strong_filter" / "generations"
    stored = [(r["problem_id"], r["attempt_index"]) for r in stored_attempts(generations)]
    assert len(stored) == len(set(stored))  # no attempt stored twice, the re-sent batches included
    assert [r for r in GenerationStore(generations).rows.values() if r["error"]] == []
    strong = Manifest.read(run_dir / "curate" / "strong_filter")
    assert strong is not None
    nodes = {n for t in strong.extra["timings"] for n in t["engine_nodes"]}
    decisions = read_decisions(run_dir / "curate" / "strong_filter" / "decisions.parquet")
    assert len({d["problem_id"] for d in decisions}) == len(decisions) == strong.rows_in
    reasons = Counter(d["reason"] for d in decisions)
    assert reasons["engine_error"] == reasons["undecided"] == 0
    ledger = pq.read_table(run_dir / "curate" / "ledger.parquet").to_pylist()
    ids = [row["problem_id"] for row in ledger]
    assert len(ids) == len(set(ids)) == POOL_SIZE  # every problem decided once
    report(
        f"curation: engine node {lost.node_id[:8]} lost, then the driver killed with "
        f"{len(faults.stored_at_curate_kill)} strong attempts stored; the re-run's engines on "
        f"{sorted(n[:8] for n in nodes)}; {strong.rows_in} problems decided once; {len(stored)} attempts stored, 0 "
        f"twice; {len(requested)} requests, {len(requested_again)} after the kill, 0 of them finished before it; "
        "0 error rows"
    )


def test_training_restarts_from_checkpoints_and_logs_each_step_once(faults: Faults, report) -> None:
    run_dir, lost = faults.run_dir, faults.losses[1]
    assert not faults.train_complete_at_kill, "training finished before the kill: nothing was tested"
    assert faults.registered_at_kill > faults.registered_before_loss  # the restarted group went on
    resumed = re.search(
        r"\[run\] train \(curated\): complete: (\d+) steps, resumed from the checkpoint at step (\d+)",
        faults.third_log,
    )
    assert resumed, faults.third_log[-3000:]
    total_steps, resumed_from = int(resumed.group(1)), int(resumed.group(2))
    assert faults.registered_at_kill <= resumed_from < total_steps
    train = Manifest.read(run_dir / "train")
    assert train is not None and train.extra["resumed_from_step"] == resumed_from
    assert lost.node_id not in train.extra["worker_nodes"].values()
    steps = [json.loads(line)["step"] for line in (run_dir / "train" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, total_steps + 1))  # every step logged once: none lost, none logged twice
    for key, mtime in faults.curated_manifests.items():
        assert (run_dir / key).stat().st_mtime_ns == mtime
    report(
        f"training: worker node {lost.node_id[:8]} lost after the checkpoint at step {faults.registered_before_loss}, "
        f"Ray Train restarted and registered step {faults.registered_at_kill}; driver killed; the re-run resumed at "
        f"{resumed_from} of {total_steps}; {len(steps)} steps logged, 0 twice"
    )


def test_evaluation_stores_each_answer_once_through_a_lost_replica_and_a_killed_driver(faults: Faults, report) -> None:
    run_dir = faults.run_dir
    total = EVAL_ITEMS * len(STUDENTS)
    assert len(faults.answered_at_kill) < total, "eval finished before the kill: nothing was tested"
    counts = [tuple(map(int, c)) for c in re.findall(r"(\d+) samples answered now, (\d+) reused", faults.final_log)]
    assert counts, faults.final_log[-3000:]
    answered_now = sum(now for now, _ in counts)
    assert answered_now == total - len(faults.answered_at_kill)  # only what was not cached was asked for
    samples = eval_samples(run_dir)
    keys = [row["key"] for row in samples]
    assert len(keys) == len(set(keys)) == total  # none lost, none answered twice
    assert {row["checkpoint"] for row in samples} == set(STUDENTS)
    report(
        f"evaluation: replica node {faults.losses[2].node_id[:8]} lost, then the driver killed with "
        f"{len(faults.answered_at_kill)} answers cached; {answered_now} asked after; {total} stored, 0 twice"
    )


def test_a_finished_job_run_again_skips_every_step_and_serves_nothing(faults: Faults) -> None:
    steps = json.loads((faults.run_dir / "summary.json").read_text())["steps"]
    # Every step that can be skipped was (eval has no such flag: its answers all come from the cache, below).
    assert set(steps) == {*SKIPPABLE_STEPS, "eval"}, steps
    assert {step: steps[step].get("skipped") for step in SKIPPABLE_STEPS} == dict.fromkeys(SKIPPABLE_STEPS, True)
    assert "is cached: nothing to serve" in faults.again_log
    assert faults.manifests_after_last == faults.manifests_before_last


def _engine_nodes(run_dir: Path) -> set[str]:
    """Every node an engine ran on, in the curation and in the control's (from the stage manifests)."""
    nodes: set[str] = set()
    for stage in ("curate/weak_filter", "curate/strong_filter", "curate/chains", "baseline/curate/chains"):
        manifest = Manifest.read(run_dir / stage)
        assert manifest is not None
        nodes |= {n for t in manifest.extra["timings"] for n in t["engine_nodes"]}
    return nodes


def _worker_nodes(run_dir: Path) -> set[str]:
    """Every node a Ray Train worker ran on, in the training and in the control's (from the train manifests)."""
    manifests = [Manifest.read(run_dir / folder) for folder in ("train", "baseline/train")]
    return {node for m in manifests if m is not None for node in m.extra["worker_nodes"].values()}


def _phases(faults: Faults) -> str:
    """Seconds from the start to the end of each phase, so a reader sees where the job's time goes."""
    return ", ".join(f"{name} done at {seconds:.0f}s" for name, seconds in faults.phase_seconds.items())
