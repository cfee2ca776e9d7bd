"""`run_training`: the driver side of `limo train` — tokenise (Ray Data), fit (Ray Train), export, manifest.

Reads top-down: inputs (run folder, dataset, model), resources (`ScalingConfig` from the config), the work
(`TorchTrainer` running recipe.py on every worker), outputs (`train/checkpoint/`, `train/metrics.jsonl`,
`train/ds_checkpoints/`) and the manifest that marks the stage complete.

Re-running with the same run folder resumes: a complete manifest returns at once; otherwise Ray Train finds
the latest checkpoint under `train/ds_checkpoints/` (its own run state lives there too) and the workers start
from the step after it. The finished export is renamed from there into `train/checkpoint/` when both are on
one filesystem; it keeps its `limo_state.json` until the manifest is written, so a run killed in between
finds it there on the re-run and only writes the manifest (Ray Train's latest checkpoint then names a folder
that has moved: it is never opened again). `describe_training_layout` says what a run would do, without starting
anything.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from limo_ray.config import RunConfig, TrainConfig
from limo_ray.errors import LimoError
from limo_ray.runfolder import (
    Manifest,
    changed_settings,
    is_complete,
    provenance,
    settings_key,
    write_json_atomic,
    write_resolved_config,
)
from limo_ray.train import checkpoint as ckpt
from limo_ray.train.data import TokenizedData, TokenizeSettings, TokenStats, read_dataset, tokenize_dataset
from limo_ray.train.deepspeed_config import dist_backend
from limo_ray.train.layout import (
    RAY_RUN_NAME,
    chat_template_of,
    check_memory,
    model_config_of,
    plan_steps,
    trust_remote_code_of,
)
from limo_ray.train.metrics import METRICS_FILE, MetricsLog, following, start_sink
from limo_ray.train.recipe import WorkerArgs, train_loop_per_worker

STAGE = "train"
CHECKPOINT_DIR = "checkpoint"
SETTINGS_FILE = "settings.json"
# Train keys that decide where and how often state is saved, not what the weights become.
OPERATIONAL_KEYS = frozenset(
    {
        "storage_path",
        "scratch_dir",
        "keep_checkpoints",
        "max_failures",
        "cpus_per_worker",
        "checkpoint_every_epochs",
        "checkpoint_every_steps",
        "max_steps",
    }
)


@dataclass
class TrainResult:
    run_dir: Path
    complete: bool
    checkpoint: Path | None  # train/checkpoint/ once complete
    metrics_path: Path
    steps: int  # optimizer steps done so far
    total_steps: int
    steps_per_epoch: int
    final_loss: float | None
    resumed_from_step: int
    seconds: float
    stats: TokenStats = field(default_factory=TokenStats)
    skipped: bool = False  # the manifest said complete: nothing ran

    def status(self) -> str:
        """One line for the user: what this call did, and where a re-run would start."""
        if self.skipped:
            return f"complete already ({self.total_steps} steps), skipped: checkpoint {self.checkpoint}"
        resumed = f", resumed from the checkpoint at step {self.resumed_from_step}" if self.resumed_from_step else ""
        if not self.complete:
            return f"stopped at step {self.steps}/{self.total_steps}{resumed} (re-run resumes)"
        loss = f"final loss {self.final_loss:.4g}" if self.final_loss is not None else "no loss logged"
        return f"complete: {self.total_steps} steps{resumed}, {loss}, checkpoint {self.checkpoint}"

    def summary(self) -> dict[str, Any]:
        out = asdict(self)
        out["run_dir"], out["metrics_path"] = str(self.run_dir), str(self.metrics_path)
        out["checkpoint"] = str(self.checkpoint) if self.checkpoint else None
        return out


def training_settings(config: RunConfig, dataset_path: str | Path, model_path: str) -> dict[str, Any]:
    """What the trained weights depend on: the train settings that shape them, the base model, the dataset's
    content, the prompt and the seed. Eval, serve and curation settings are not in it, nor where checkpoints go."""
    return {
        "train": config.train.model_dump(mode="json", exclude=set(OPERATIONAL_KEYS)),
        "model": model_path,
        "dataset_sha256": hashlib.sha256(Path(dataset_path).read_bytes()).hexdigest(),
        "system": config.prompt.system,
        "chat_template": chat_template_of(config),
        "trust_remote_code": trust_remote_code_of(config),
        "seed": config.seed,
    }


def training_key(config: RunConfig, dataset_path: str | Path, model_path: str) -> str:
    """The key a finished training's manifest and export carry: a re-run with the same key is skipped."""
    return settings_key(training_settings(config, dataset_path, model_path))


def claim_training_folder(train_dir: Path, settings: dict[str, Any]) -> None:
    """Record the settings a training in `train_dir` is for; refuse to continue one begun with other settings.

    Ray Train would otherwise resume the old run's checkpoints under the new settings and call the result done.
    """
    path = train_dir / SETTINGS_FILE
    if path.is_file():
        before = json.loads(path.read_text(encoding="utf-8"))
        changed = changed_settings(before, settings)
        if changed:
            raise LimoError(
                f"{train_dir} holds a training with other settings (changed: {', '.join(changed)}): delete that "
                "folder to train again, or use a new --run-dir"
            )
        return
    write_json_atomic(path, settings)


def worker_runtime_env(train: TrainConfig) -> dict[str, Any]:
    """The Ray Train workers' runtime env: on GPUs, PyTorch's expandable segments (less fragmentation with
    FlashAttention's variable lengths), set before the worker process first touches CUDA."""
    if not train.use_gpu:
        return {}
    return {"env_vars": {"PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True"}}


def run_training(
    config: RunConfig,
    run_dir: str | Path,
    dataset_path: str | Path,
    model_path: str,
    *,
    storage_path: str | None = None,
    keep_checkpoints: int | None = None,
    max_failures: int | None = None,
    max_steps: int | None = None,
    fail_at_step: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> TrainResult:
    """Fine-tune `model_path` (a folder or hub name, already resolved) on a LIMO-format dataset.

    Each keyword left None takes the config's `train.<same name>`:
    storage_path: where Ray Train persists checkpoints (default `<run_dir>/train`; `s3://...` on clusters).
    keep_checkpoints: sharded checkpoints kept in storage (the newest; the HF export counts as one).
    max_failures: worker-group restarts Ray Train does by itself, each resuming from the last checkpoint.
    max_steps: stop after this many optimizer steps in total, with a checkpoint; a later call resumes.
    fail_at_step: test hook — the workers raise after this step, as if killed.
    progress: given each step's `[train] step N/TOTAL, loss L, T tokens/s` line while the workers train.
    """
    storage_path = storage_path if storage_path is not None else config.train.storage_path
    keep_checkpoints = keep_checkpoints if keep_checkpoints is not None else config.train.keep_checkpoints
    max_failures = max_failures if max_failures is not None else config.train.max_failures
    max_steps = max_steps if max_steps is not None else config.train.max_steps
    started = time.time()
    run_dir = Path(run_dir).resolve()
    train_dir = run_dir / STAGE
    train = config.train
    metrics_path = train_dir / METRICS_FILE
    write_resolved_config(config, run_dir)
    settings = training_settings(config, dataset_path, model_path)
    config_hash = settings_key(settings)  # = training_key(...), without reading the dataset twice
    if is_complete(train_dir, config_hash):
        return _result_from_manifest(run_dir, metrics_path)
    claim_training_folder(train_dir, settings)

    if train.use_gpu:
        check_memory(config, model_config_of(model_path, trust_remote_code_of(config)))

    import ray
    from ray.train import CheckpointConfig, FailureConfig
    from ray.train import RunConfig as RayRunConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from limo_ray.engine import init_ray
    from limo_ray.train.scaling import check_worker_group_placeable, scaling_config

    init_ray(config.cluster)
    storage = storage_path or str(train_dir)

    tokenize = TokenizeSettings(
        model_path,
        config.prompt.system,
        train.max_seq_len,
        train.truncation,
        chat_template=chat_template_of(config),
        trust_remote_code=trust_remote_code_of(config),
    )
    data = tokenize_dataset(
        read_dataset(dataset_path), tokenize, num_cpus=min(1.0, float(config.cluster.cpus_per_node))
    )
    _, per_epoch = plan_steps(data.lengths.tolist(), train, train.num_workers)
    total = per_epoch * train.epochs
    moved = _export_state(str(train_dir / CHECKPOINT_DIR), config_hash)
    if moved is not None:  # killed after the export was moved into place, before the manifest: finish that
        return _finish(
            config, run_dir, dataset_path, model_path, config_hash, data, per_epoch, storage, started, moved, {}
        )
    check_worker_group_placeable(train, config.cluster.placement_timeout_s, config.cluster.node_resources.train)
    # Ray Train restores its latest *registered* checkpoint (fully uploaded); the workers start after it, and
    # a step count equal to the total means only the export is left to do.
    args = WorkerArgs(
        train=train.model_dump(),
        model_path=model_path,
        data_ref=ray.put(data),
        seed=config.seed,
        config_hash=config_hash,
        total_steps=total,
        steps_per_epoch=per_epoch,
        chat_template=chat_template_of(config),
        trust_remote_code=trust_remote_code_of(config),
        sink=start_sink(metrics_path),
        max_steps=max_steps,
        fail_at_step=fail_at_step,
        run_name=config.name,
    )
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=asdict(args),
        scaling_config=scaling_config(train, config.cluster.node_resources.train),
        torch_config=TorchConfig(backend=dist_backend(train.use_gpu)),
        run_config=RayRunConfig(
            name=RAY_RUN_NAME,
            storage_path=storage,
            checkpoint_config=CheckpointConfig(num_to_keep=keep_checkpoints),
            failure_config=FailureConfig(max_failures=max_failures),
            worker_runtime_env=worker_runtime_env(train),
        ),
    )
    try:
        with following(metrics_path, total, progress):
            trainer.fit()
    except Exception as exc:  # Ray wraps the worker's error; the user needs the cause and the way back
        raise LimoError(
            f"training failed ({_root_cause(exc)}); re-run the same command with the same --run-dir to resume from "
            f"the last checkpoint in {storage}/{RAY_RUN_NAME}"
        ) from exc
    finally:
        notes = _drain(args.sink)
    # fit() returned: the export, if this run reached the end, was uploaded and registered before it did (a
    # folder left by an interrupted upload is not trusted unless the run got there).
    return _finish(
        config, run_dir, dataset_path, model_path, config_hash, data, per_epoch, storage, started, None, notes
    )


def _finish(
    config: RunConfig,
    run_dir: Path,
    dataset_path: str | Path,
    model_path: str,
    config_hash: str,  # training_key of this run (hashing the dataset again would read it twice)
    data: TokenizedData,
    per_epoch: int,
    storage: str,
    started: float,
    moved: dict[str, Any] | None,
    notes: dict[str, Any],
) -> TrainResult:
    """After training: put the export in place and write the manifest, or say where a re-run resumes."""
    train, train_dir = config.train, run_dir / STAGE
    total = per_epoch * train.epochs
    metrics_path = train_dir / METRICS_FILE
    export_uri = f"{storage.rstrip('/')}/{RAY_RUN_NAME}/{ckpt.EXPORT_NAME}"
    resumed_from = int(notes.get("resumed_from_step", 0))
    rows = MetricsLog(metrics_path).rows()
    last_step = rows[-1]["step"] if rows else resumed_from
    final_loss = rows[-1]["loss"] if rows else None
    reached_end = moved is not None or max(last_step, resumed_from) >= total
    state = moved or (_export_state(export_uri, config_hash) if reached_end else None)
    result = TrainResult(
        run_dir=run_dir,
        complete=state is not None,
        checkpoint=None,
        metrics_path=metrics_path,
        steps=total if state is not None else last_step,
        total_steps=total,
        steps_per_epoch=per_epoch,
        final_loss=final_loss,
        resumed_from_step=resumed_from,
        seconds=round(time.time() - started, 2),
        stats=data.stats,
    )
    if state is None:
        return result  # stopped early (max_steps): resumable, not complete

    checkpoint_dir = train_dir / CHECKPOINT_DIR
    if moved is None:
        import pyarrow.fs as pafs

        filesystem, path = pafs.FileSystem.from_uri(export_uri)
        ckpt.place_export(path, filesystem, checkpoint_dir)
    probe = checkpoint_dir / ckpt.PROBE_FILE
    if probe.exists():  # a record of the trained model's logits, not part of the model folder
        probe.replace(train_dir / ckpt.PROBE_FILE)
    result.checkpoint = checkpoint_dir
    Manifest(
        stage=STAGE,
        inputs=[str(dataset_path), model_path],
        rows_in=data.stats.rows_in,
        rows_out=data.stats.rows_kept,
        rows_rejected=data.stats.rows_dropped,
        config_hash=config_hash,
        seconds=result.seconds,
        complete=True,
        produced_by=provenance(),
        extra={
            "tokens": data.stats.to_dict(),
            "steps": total,
            "steps_per_epoch": per_epoch,
            "epochs": train.epochs,
            "global_batch_size": train.global_batch,
            "gradient_accumulation_steps": train.gradient_accumulation_steps,
            "final_loss": final_loss,
            "resumed_from_step": resumed_from,
            "world_size": train.num_workers,
            # rank -> Ray node id of the last worker group that ran (empty when only the export was left)
            "worker_nodes": notes.get("worker_nodes", {}),
            "storage_path": storage,
            "checkpoint": str(checkpoint_dir),
        },
    ).write(train_dir)
    # Last: until the manifest says complete, this file is how a re-run knows the export is already in place.
    (checkpoint_dir / ckpt.STATE_FILE).unlink(missing_ok=True)
    return result


def _root_cause(exc: BaseException) -> str:
    seen = exc
    while seen.__cause__ is not None:
        seen = seen.__cause__
    text = " ".join(str(seen).split()) or type(seen).__name__
    return text[:300]


def _read_json(uri: str) -> dict[str, Any] | None:
    import pyarrow.fs as pafs

    try:
        filesystem, path = pafs.FileSystem.from_uri(uri)
        with filesystem.open_input_stream(path) as stream:
            return json.loads(stream.read().decode("utf-8"))
    except (FileNotFoundError, OSError, ValueError):
        return None


def _export_state(export_uri: str, config_hash: str) -> dict[str, Any] | None:
    """The state file of this config's finished export at `export_uri` (Ray Train's storage or train/checkpoint)."""
    state = _read_json(f"{export_uri}/{ckpt.STATE_FILE}")
    ok = state and state.get("kind") == ckpt.EXPORT_NAME and state.get("config_hash") == config_hash
    return state if ok else None


def _drain(sink: Any) -> dict[str, Any]:
    """Wait for the rows sent before the end to be written, read the notes, stop the sink."""
    import ray

    try:
        ray.get(sink.ping.remote())
        return ray.get(sink.notes.remote())
    finally:
        ray.kill(sink)


def _result_from_manifest(run_dir: Path, metrics_path: Path) -> TrainResult:
    manifest = Manifest.read(run_dir / STAGE)
    assert manifest is not None
    extra = manifest.extra
    return TrainResult(
        run_dir=run_dir,
        complete=True,
        checkpoint=Path(extra["checkpoint"]),
        metrics_path=metrics_path,
        steps=extra["steps"],
        total_steps=extra["steps"],
        steps_per_epoch=extra["steps_per_epoch"],
        final_loss=extra.get("final_loss"),
        resumed_from_step=extra.get("resumed_from_step", 0),
        seconds=0.0,
        stats=TokenStats(**extra["tokens"]),
        skipped=True,
    )
