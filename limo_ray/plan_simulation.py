"""`limo plan --simulate`: the whole job's resource life cycle, placed by the real Ray scheduler on a local
cluster shaped like the config's (a head with no CPUs, as on KubeRay, plus `cluster.num_nodes` worker nodes
declaring `cluster.gpus_per_node` logical GPUs each: Ray's own multi-node test cluster, `ray.cluster_utils`).

Why: a layout the arithmetic approves can still never be scheduled (16 bundles under STRICT_PACK on 8-GPU
nodes), or hold its GPUs into the next stage (a placement group nobody removes); both show up only on the
cluster, as a silent hang before the first training step. The simulation runs the project's own placement
code end to end, in the order the job does:

- curation: each engine stage's pool (weak filter, strong filter, then every chain model) through the same
  `EngineCache` / `EnginePool` the pipeline uses, and its release before the next stage asks;
- training: Ray Train's worker group, through a real `DataParallelTrainer` with the training's `ScalingConfig`;
- evaluation: the Serve deployment of the student with the options `serve.app` gives it, at `serve.min_replicas`
  and then at `serve.max_replicas`.

Only what needs a GPU is replaced: the vLLM engine body (`EngineProbe`, which holds the same resources and
starts one GPU worker per bundle, as vLLM's Ray executor does) and the NCCL training body (a probe train
function, with no process group). Each probe records the node id and GPU ids Ray assigned to it.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from limo_ray.config import RunConfig
from limo_ray.engine.placement import wait_until
from limo_ray.engine.pool import EngineCache
from limo_ray.engine.spec import EngineSpec, engine_spec
from limo_ray.errors import LimoError

RECORDER = "limo-plan-simulation-recorder"


def _here(role: str) -> dict[str, Any]:
    import ray

    return {
        "role": role,
        "node": ray.get_runtime_context().get_node_id(),
        "gpus": [str(g) for g in ray.get_gpu_ids()],
    }


class _GpuWorker:
    """One bundle's worker (what vLLM's Ray executor starts per tensor/pipeline-parallel rank)."""

    def where(self) -> dict[str, Any]:
        return _here("worker")


def _occupy_group(world_size: int) -> tuple[list[Any], list[dict[str, Any]]]:
    """Start one 1-GPU worker on each bundle of the caller's placement group; return them and where they landed."""
    import ray
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    group = ray.util.get_current_placement_group()
    workers = [
        ray.remote(_GpuWorker)
        .options(
            num_cpus=0,
            num_gpus=1,
            scheduling_strategy=PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=i),
        )
        .remote()
        for i in range(world_size)
    ]
    return workers, ray.get([w.where.remote() for w in workers])


class EngineProbe:
    """Stands in for `EngineActor` in an engine pool: same constructor, same resources, no vLLM."""

    def __init__(self, spec: EngineSpec, sampling: Mapping[str, Any]) -> None:
        self.landings = [_here("engine")]
        self._workers: list[Any] = []
        if spec.needs_placement_group():
            self._workers, landed = _occupy_group(spec.world_size)
            self.landings += landed
        self.ready_at = time.time()

    def ready(self) -> float:
        return self.ready_at

    def where(self) -> list[dict[str, Any]]:
        return self.landings


class _Recorder:
    """Collects where the training workers and Serve replicas landed (they cannot be asked directly)."""

    def __init__(self) -> None:
        self.rows: dict[str, list[dict[str, Any]]] = {}
        self.peaks: dict[str, float] = {}

    def add(self, stage: str, landings: list[dict[str, Any]]) -> int:
        self.rows.setdefault(stage, []).extend(landings)
        return len(self.rows[stage])

    def peak(self, stage: str, gpus_in_use: float) -> None:
        self.peaks[stage] = max(self.peaks.get(stage, 0.0), gpus_in_use)

    def get(self, stage: str) -> tuple[list[dict[str, Any]], float]:
        return self.rows.get(stage, []), self.peaks.get(stage, 0.0)


def _gpus_in_use() -> float:
    import ray

    return float(ray.cluster_resources().get("GPU", 0.0) - ray.available_resources().get("GPU", 0.0))


def _train_probe(cfg: dict[str, Any]) -> None:
    """Ray Train worker body: record where this rank landed; the last one measures the group's GPUs held."""
    import ray
    import ray.train

    recorder = ray.get_actor(RECORDER)
    count = ray.get(recorder.add.remote("train", [_here("train worker")]))
    if count == cfg["num_workers"]:
        ray.get(recorder.peak.remote("train", _gpus_in_use()))


class ServeProbe:
    """Stands in for the student's Serve replica: same deployment options, records where it landed."""

    def __init__(self, spec: dict[str, Any], stage: str) -> None:
        import ray

        self._workers: list[Any] = []
        landings = [_here("replica")]
        if spec["world_size"] > 1:
            self._workers, landed = _occupy_group(spec["world_size"])
            landings += landed
        recorder = ray.get_actor(RECORDER)
        ray.get(recorder.add.remote(stage, landings))
        ray.get(recorder.peak.remote(stage, _gpus_in_use()))

    async def __call__(self, request: Any) -> str:
        return "probe"


@dataclass
class StageReport:
    name: str
    groups: int  # placement groups (or worker groups) placed
    nodes: int  # distinct nodes holding the stage's GPUs
    gpus: int  # distinct GPUs the probes were given
    peak_gpus: float  # GPUs in use in the cluster while the stage held its resources
    held_after: float | None = None  # GPUs still in use once the stage released its resources
    detail: str = ""
    node_ids: list[str] = field(default_factory=list)


@dataclass
class SimulationReport:
    config_name: str
    shape: str
    stages: list[StageReport]
    failed_stage: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _summarise(name: str, groups: int, landings: list[dict[str, Any]], peak: float, detail: str) -> StageReport:
    gpus = {(row["node"], g) for row in landings for g in row["gpus"]}
    nodes = sorted({node for node, _ in gpus})
    return StageReport(name, groups, len(nodes), len(gpus), peak, None, detail, nodes)


def _wait_released(timeout_s: float = 10.0) -> float:
    """GPUs still in use once released resources have been returned (the scheduler updates asynchronously)."""
    wait_until(lambda: _gpus_in_use() == 0, timeout_s, interval_s=0.25)
    return _gpus_in_use()


def engine_stages(config: RunConfig) -> list[tuple[str, str]]:
    """(stage, model) in the order curation asks for engines."""
    cur = config.curate
    return [
        ("curate.weak_filter", cur.weak.model),
        ("curate.strong_filter", cur.strong.model),
        *((f"curate.chains[{model}]", model) for model in cur.chains.models),
    ]


class SimulatedCluster:
    """A head (no CPUs, as on KubeRay) plus `num_nodes` worker nodes with logical GPUs; stopped by its own handle."""

    def __init__(self, config: RunConfig) -> None:
        from ray.cluster_utils import Cluster

        c = config.cluster
        self.cluster = Cluster(
            initialize_head=True, head_node_args={"num_cpus": 0, "num_gpus": 0, "include_dashboard": False}
        )
        try:
            # Every node declares every custom resource the config asks for (`cluster.node_resources`): the
            # simulation checks the shapes, not which pool a node belongs to.
            named = {**c.node_resources.engines, **c.node_resources.train, **c.node_resources.serve}
            custom = {name: float(c.cpus_per_node + c.gpus_per_node) for name in named}
            for _ in range(c.num_nodes):
                self.cluster.add_node(num_cpus=c.cpus_per_node, num_gpus=c.gpus_per_node, resources=custom)
            self.cluster.wait_for_nodes()
        except BaseException:
            self.cluster.shutdown()
            raise

    @property
    def address(self) -> str:
        return self.cluster.address

    def shutdown(self) -> None:
        self.cluster.shutdown()


def simulate_job(
    config: RunConfig, timeout_s: float = 60.0, log: Callable[[str], None] = print, address: str | None = None
) -> SimulationReport:
    """Walk the job's placements on a simulated cluster (or on `address`, an already running one)."""
    import ray

    c = config.cluster
    if c.gpus_per_node == 0:
        raise LimoError("plan --simulate: the config's cluster has no GPUs (cluster.gpus_per_node = 0)")
    if ray.is_initialized():
        raise LimoError("plan --simulate: Ray is already initialised in this process")
    shape = f"head (0 CPUs) + {c.num_nodes} x {{CPU: {c.cpus_per_node}, GPU: {c.gpus_per_node}}}"
    log(f"[simulate] starting a local Ray cluster: {shape}")
    cluster = SimulatedCluster(config) if address is None else None
    report = SimulationReport(config.name, shape, [])
    try:
        ray.init(address=address or cluster.address, logging_level="ERROR", log_to_driver=False)
        recorder = ray.remote(_Recorder).options(name=RECORDER, num_cpus=0).remote()
        stage = ""
        try:
            for step in (_curation, _training, _serving):
                stage = step.__name__
                step(config, report, timeout_s, log)
        except LimoError as exc:
            report.failed_stage = report.failed_stage or stage
            report.error = str(exc)
        ray.kill(recorder)
    finally:
        if ray.is_initialized():
            ray.shutdown()
        if cluster is not None:
            cluster.shutdown()
    return report


def _curation(config: RunConfig, report: SimulationReport, timeout_s: float, log: Callable[[str], None]) -> None:
    import ray

    from limo_ray.engine.placement import engine_replicas

    c = config.cluster
    # The pipeline's own cache: a stage on another model closes the previous pool before it asks.
    cache = EngineCache(
        engine_cls=EngineProbe,
        gpus_per_node=c.gpus_per_node,
        placement_timeout_s=timeout_s,
        node_resources=c.node_resources.engines,
    )
    try:
        for name, model in engine_stages(config):
            spec = engine_spec(config, model, device="cuda")
            size = engine_replicas(spec, c)
            previous = cache.current
            if previous is not None and (previous.spec, previous.size) != (spec, size):
                cache.close()
                report.stages[-1].held_after = _wait_released()
            report.failed_stage = name
            pool = cache.pool(spec, size, stage=name)
            actors = pool.actors()
            ray.get([a.ready.remote() for a in actors])
            landings = [row for rows in ray.get([a.where.remote() for a in actors]) for row in rows]
            detail = f"{size} x {model} (TP {spec.tensor_parallel_size} x PP {spec.pipeline_parallel_size}, "
            detail += f"{pool.placement.strategy})"
            report.stages.append(_summarise(name, len(pool.placement_groups()), landings, _gpus_in_use(), detail))
            log(f"[simulate] {name}: placed {detail}")
    finally:
        cache.close()
    if report.stages:
        report.stages[-1].held_after = _wait_released()
    report.failed_stage = None


def _training(config: RunConfig, report: SimulationReport, timeout_s: float, log: Callable[[str], None]) -> None:
    import ray
    from ray.train import RunConfig as RayRunConfig
    from ray.train.backend import BackendConfig
    from ray.train.v2.api.data_parallel_trainer import DataParallelTrainer

    from limo_ray.train.scaling import PLACEMENT_STRATEGY, check_worker_group_placeable, scaling_config

    t = config.train
    report.failed_stage = "train"
    check_worker_group_placeable(t, timeout_s, config.cluster.node_resources.train)
    with tempfile.TemporaryDirectory(prefix="limo-simulate-") as storage:
        trainer = DataParallelTrainer(
            _train_probe,
            train_loop_config={"num_workers": t.num_workers},
            backend_config=BackendConfig(),  # the NCCL process group needs GPUs: the probe body has none
            scaling_config=scaling_config(t, config.cluster.node_resources.train),
            run_config=RayRunConfig(name="simulate", storage_path=storage),
        )
        try:
            trainer.fit()
        except Exception as exc:
            raise LimoError(f"train: the probe worker group failed: {' '.join(str(exc).split())[:300]}") from exc
    landings, peak = ray.get(ray.get_actor(RECORDER).get.remote("train"))
    stage = _summarise("train", 1, landings, peak, f"{t.num_workers} Ray Train workers ({PLACEMENT_STRATEGY})")
    stage.held_after = _wait_released()
    report.stages.append(stage)
    report.failed_stage = None
    log(f"[simulate] train: placed {stage.detail}")


def _serving(config: RunConfig, report: SimulationReport, timeout_s: float, log: Callable[[str], None]) -> None:
    import ray
    from ray import serve

    from limo_ray.serve.app import AppArgs, ModelArgs, model_deployment_options
    from limo_ray.serve.server import deploy_and_wait

    s = config.serve
    spec = engine_spec(config, config.train.model, device="cuda")
    serve.start(proxy_location="Disabled")
    try:
        for label, replicas in (("min", max(s.min_replicas, 1)), ("max", s.max_replicas)):
            name = f"eval.serve[{label} {replicas}]"
            report.failed_stage = name
            args = AppArgs(
                models=[ModelArgs(name="student", engine={})],
                min_replicas=replicas,
                max_replicas=replicas,
                gpus_per_node=config.cluster.gpus_per_node,
            )
            options = model_deployment_options(spec, "student", args)
            app = serve.deployment(ServeProbe).options(**options).bind({"world_size": spec.world_size}, name)
            deploy_and_wait(app, "simulate", None, timeout_s, {"student": spec}, args.model_dump())
            landings, peak = ray.get(ray.get_actor(RECORDER).get.remote(name))
            strategy = options.get("placement_group_strategy", "-")
            detail = f"{replicas} x student replica (TP {spec.tensor_parallel_size}, {strategy})"
            stage = _summarise(name, replicas, landings, peak, detail)
            # Deleting the app must give every replica's placement group back.
            serve.delete("simulate")
            stage.held_after = _wait_released()
            report.stages.append(stage)
            log(f"[simulate] {name}: placed {detail}")
        report.failed_stage = None
    finally:
        with contextlib.suppress(Exception):
            serve.shutdown()


def format_simulation(report: SimulationReport) -> str:
    """The per-stage table (and, on failure, the stage that could not be placed last)."""
    header = ("stage", "groups", "nodes", "GPUs held", "peak GPUs", "held after", "placed")
    rows = [header]
    for s in report.stages:
        after = "-" if s.held_after is None else f"{s.held_after:g}"
        rows.append((s.name, str(s.groups), str(s.nodes), str(s.gpus), f"{s.peak_gpus:g}", after, s.detail))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [f"simulated placement for {report.config_name!r} on {report.shape}", ""]
    for i, row in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.append("")
    if report.ok:
        lines.append("every stage was placed, and its GPUs were free again before the next stage asked")
    else:
        lines.append(f"stage {report.failed_stage} could not be placed: {report.error}")
    return "\n".join(lines)
