"""The SFT recipe that runs in every Ray Train worker: DeepSpeed (ZeRO-3 by default) around a HF causal LM.

torchtune's shape: `setup` (distributed, data, model, optimizer, resume) / `train` / `save_checkpoint` /
`export` / `cleanup`. One code path for CPU (gloo, sdpa) and GPU (NCCL, FlashAttention-2); only
`deepspeed_config.py` decides what differs. An own loop around `deepspeed.initialize` rather than HF Trainer:
simpler here, and it gives exact control of the loss normalisation and of where a resumed run restarts.

A step = `gradient_accumulation_steps` micro-batches on every rank (derived from `train.global_batch_size`);
its loss is the token mean over all assistant tokens of the global batch (see packing.py). A sharded checkpoint
is saved every `checkpoint_every_epochs` epochs (and `checkpoint_every_steps` steps) and at the last step, and
uploaded by Ray Train in the background while training goes on; Ray Train registers it, and a resumed run may
start from it, only once every rank's upload is done. Every rank calls `ray.train.report` with each checkpoint
(a report is a barrier that waits for the Train controller); rank 0 logs every step to `train/metrics.jsonl`
through the driver-side sink and to Ray metrics gauges.
"""

from __future__ import annotations

import gc
import logging
import os
import shutil
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from limo_ray.config import TrainConfig
from limo_ray.train import checkpoint as ckpt
from limo_ray.train.attention import packed_attention
from limo_ray.train.deepspeed_config import build_deepspeed_config, dist_backend, resolve_attention
from limo_ray.train.loss import CausalLMForSFT
from limo_ray.train.packing import collate, epoch_rows, step_plan
from limo_ray.train.schedule import lr_multiplier
from limo_ray.train.telemetry import StepGauges


class SimulatedFailure(RuntimeError):
    """Raised by the `fail_at_step` test hook: a crash after a step, as a killed worker would leave things."""


@dataclass
class WorkerArgs:
    """Everything a worker needs, sent through `train_loop_config` (plain data, object refs, an actor handle)."""

    train: dict[str, Any]  # TrainConfig.model_dump()
    model_path: str
    data_ref: Any  # ObjectRef[TokenizedData]
    seed: int
    config_hash: str
    total_steps: int
    steps_per_epoch: int
    chat_template: str | None = None
    trust_remote_code: bool = False
    sink: Any = None  # MetricsSink actor handle
    max_steps: int | None = None  # stop (resumably) after this many steps in total
    fail_at_step: int | None = None  # test hook: raise after this step
    probe_tokens: int = 16
    run_name: str = "limo"


class SFTRecipe:
    def __init__(self, args: WorkerArgs) -> None:
        self.args = args
        self.cfg = TrainConfig.model_validate(args.train)
        self.engine: Any = None
        self.start_step = 0
        self.finished = False  # the export already exists: nothing to do
        self._plans: dict[int, list[list[list[list[list[int]]]]]] = {}
        self._gauges: StepGauges | None = None
        self.timings: dict[str, float] = {}  # seconds per phase, logged by rank 0 at the end

    # --------------------------------------------------------------------------------------------- setup

    def setup(self) -> None:
        for phase in (self._setup_distributed, self._setup_data, self._setup_model, self._setup_optimizer):
            with self._timed(phase.__name__.removeprefix("_setup_")):
                phase()
        with self._timed("restore"):
            self.start_step = self._restore()

    @contextmanager
    def _timed(self, phase: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[phase] = self.timings.get(phase, 0.0) + time.perf_counter() - started

    def _setup_distributed(self) -> None:
        import deepspeed
        import ray.train

        context = ray.train.get_context()
        self.rank, self.world_size = context.get_world_rank(), context.get_world_size()
        if self.cfg.use_gpu:
            from ray.train.torch import get_device

            self.device = get_device()  # the GPU Ray assigned this worker, whatever CUDA_VISIBLE_DEVICES says
            torch.cuda.set_device(self.device)
        else:
            self.device = torch.device("cpu")
            torch.set_num_threads(max(1, int(self.cfg.cpus_per_worker)))
            # DeepSpeed would compile its shared-memory allreduce op at init (~70 s on 2 cores); plain gloo is fine.
            deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
        # Ray Train already formed the process group; DeepSpeed wraps it.
        deepspeed.init_distributed(dist_backend=dist_backend(self.cfg.use_gpu), dist_init_required=False)
        torch.manual_seed(self.args.seed)

    def _setup_data(self) -> None:
        import ray

        self.data = ray.get(self.args.data_ref)
        self.attention = resolve_attention(self.cfg.attention, on_gpu=self.cfg.use_gpu)
        # FlashAttention-2 varlen on GPU, per-sample sdpa on CPU: both take one flat row with cu_seq_lens.
        self.attn_implementation, self.layout = packed_attention(self.attention)
        self.lengths = self.data.lengths.tolist()

    def _epoch_plan(self, epoch: int) -> list[list[list[list[list[int]]]]]:
        if epoch not in self._plans:
            rows = epoch_rows(self.lengths, self.cfg.packing, self.cfg.max_seq_len, self.args.seed, epoch)
            plan = step_plan(rows, self.cfg.micro_batch_size, self.cfg.gradient_accumulation_steps, self.world_size)
            if len(plan) != self.args.steps_per_epoch:
                raise RuntimeError(f"epoch {epoch}: {len(plan)} steps, the driver planned {self.args.steps_per_epoch}")
            self._plans = {epoch: plan}  # one epoch at a time: the previous one is never needed again
        return self._plans[epoch]

    def _setup_model(self) -> None:
        from transformers import AutoConfig, AutoModelForCausalLM
        from transformers.integrations import HfDeepSpeedConfig

        from limo_ray.train.data import load_tokenizer

        model_config = AutoConfig.from_pretrained(self.args.model_path, trust_remote_code=self.args.trust_remote_code)
        hidden = getattr(model_config, "hidden_size", None)
        self.ds_config = build_deepspeed_config(self.cfg, self.world_size, hidden)
        # Alive before from_pretrained: transformers then loads straight into ZeRO-3 shards (zero.Init), so no
        # rank ever holds the whole model.
        self._hf_ds_config = HfDeepSpeedConfig(self.ds_config) if self.cfg.zero_stage == 3 else None
        dtype = torch.bfloat16 if self.cfg.precision == "bf16" else torch.float32
        self.model = AutoModelForCausalLM.from_pretrained(
            self.args.model_path,
            dtype=dtype,
            attn_implementation=self.attn_implementation,
            trust_remote_code=self.args.trust_remote_code,
        )
        self.model.config.use_cache = False
        if self.cfg.gradient_checkpointing:
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        # What DeepSpeed trains: the model with its lm_head + loss fused (loss.py); the HF model stays `.lm`.
        self.sft_model = CausalLMForSFT(self.model, self.cfg.loss_chunk_tokens)
        self.tokenizer = load_tokenizer(self.args.model_path, self.args.trust_remote_code)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0

    def _setup_optimizer(self) -> None:
        import deepspeed

        decay, no_decay = [], []
        for name, param in self.model.named_parameters():
            # Norm weights and biases are not decayed (the usual AdamW convention).
            (no_decay if param.ndim < 2 or name.endswith(".bias") else decay).append(param)
        groups = [
            {"params": decay, "weight_decay": self.cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        if self.cfg.cpu_offload:
            from deepspeed.ops.adam import DeepSpeedCPUAdam

            optimizer: Any = DeepSpeedCPUAdam(groups, lr=self.cfg.learning_rate, adamw_mode=True)
        else:
            optimizer = torch.optim.AdamW(groups, lr=self.cfg.learning_rate)
        factor = lr_multiplier(self.cfg.lr_scheduler, self.args.total_steps, self.cfg.warmup_ratio)
        self.engine, self.optimizer, _, self.scheduler = deepspeed.initialize(
            model=self.sft_model,
            optimizer=optimizer,
            lr_scheduler=lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, factor),
            config=self.ds_config,
            dist_init_required=False,
        )

    def _restore(self) -> int:
        """Load the latest checkpoint Ray Train knows for this run folder; returns the step to start from."""
        import ray
        import ray.train

        checkpoint = ray.train.get_checkpoint()
        step = 0
        if checkpoint is not None and ckpt.is_export(checkpoint.path):
            # Training had ended; only the driver's part was left (its rename may have moved this folder away).
            self.finished = True
            return self.args.total_steps
        if checkpoint is not None:
            with ckpt.rank_view(checkpoint, self.rank, self.cfg.scratch_dir) as folder:
                state = ckpt.read_state(folder)
                if state["world_size"] != self.world_size:
                    raise RuntimeError(
                        f"the checkpoint at step {state['step']} was written by {state['world_size']} workers, "
                        f"this run has {self.world_size}: ZeRO shards cannot be re-split; use the same "
                        "train.num_workers"
                    )
                ckpt.load_sharded(self.engine, folder)
                step = int(state["step"])
        if self.args.sink is not None:  # where each rank ran, for the manifest (a restart may move it)
            self.args.sink.worker_node.remote(self.rank, ray.get_runtime_context().get_node_id())
        if self.rank == 0 and self.args.sink is not None:
            ray.get(self.args.sink.truncate_after.remote(step))
            self.args.sink.note.remote("resumed_from_step", step)
        return step

    # --------------------------------------------------------------------------------------------- train

    def train(self) -> None:
        import ray.train

        if self.finished:
            return
        total, per_epoch = self.args.total_steps, self.args.steps_per_epoch
        stop = min(total, self.args.max_steps) if self.args.max_steps else total
        self.engine.train()
        for step in range(self.start_step, stop):
            epoch, index = divmod(step, per_epoch)
            with self._timed("steps"):
                row = self._train_step(step, epoch, self._epoch_plan(epoch)[index][self.rank])
            if self.rank == 0:
                self._log(row)
            done = step + 1
            if checkpoint_due(done, per_epoch, self.cfg.checkpoint_every_epochs, self.cfg.checkpoint_every_steps, stop):
                with self._timed("checkpoints"):
                    self.save_checkpoint(done, row)
            if self.args.fail_at_step == done:
                # A killed worker may lose an upload in flight; the test hook waits for them, so that a test knows
                # which checkpoint its resumed run starts from.
                ray.train.get_all_reported_checkpoints(consistency_mode=ray.train.CheckpointConsistencyMode.COMMITTED)
                raise SimulatedFailure(f"fail_at_step={done}: stopping the way a killed worker would")
        if stop == total:
            with self._timed("export"):
                self.export()

    def _log(self, row: dict[str, Any]) -> None:
        if self.args.sink is not None:
            self.args.sink.append.remote(row)
        if self._gauges is None:
            self._gauges = StepGauges(self.args.run_name)
        self._gauges.set(row)

    def _train_step(self, step: int, epoch: int, micro_batches: list[list[list[int]]]) -> dict[str, Any]:
        import torch.distributed as dist

        started = time.perf_counter()
        lr = float(self.scheduler.get_last_lr()[0])
        batches = [collate(self.data, mb, self.layout, self.pad_id).to(self.device) for mb in micro_batches]
        # On the training device: NCCL reduces CUDA tensors only.
        counts = torch.tensor(
            [sum(b.num_targets for b in batches), sum(b.num_tokens for b in batches)],
            dtype=torch.float64,
            device=self.device,
        )
        dist.all_reduce(counts)
        global_targets = max(1.0, float(counts[0]))
        # DeepSpeed divides by grad_accum and averages over ranks; this scale turns that into a global token mean.
        scale = self.world_size * self.cfg.gradient_accumulation_steps / global_targets
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        for batch in batches:
            micro_loss = self.engine(targets=batch.targets, **batch.model_inputs())
            self.engine.backward(micro_loss * scale)
            self.engine.step()
            loss_sum += micro_loss.detach().to(torch.float64)
        dist.all_reduce(loss_sum)
        total_loss = float(loss_sum)  # waits for the device: the step's time is all in
        seconds = time.perf_counter() - started
        grad_norm = self.engine.get_global_grad_norm()
        return {
            "step": step + 1,
            "epoch": round((step + 1) / self.args.steps_per_epoch, 4),
            "loss": total_loss / global_targets,
            "lr": lr,
            "tokens_per_s": float(counts[1]) / seconds,
            "grad_norm": None if grad_norm is None else float(grad_norm),
            "tokens": int(counts[1]),
            "target_tokens": int(counts[0]),
            "seconds": round(seconds, 4),
        }

    # --------------------------------------------------------------------------------------------- checkpoints

    def _state(self, step: int) -> dict[str, Any]:
        return {
            "step": step,
            "total_steps": self.args.total_steps,
            "world_size": self.world_size,
            "config_hash": self.args.config_hash,
        }

    def save_checkpoint(self, step: int, metrics: dict[str, Any]) -> None:
        """All ranks: shard to scratch, hand it to Ray Train, which uploads it in the background (training goes on)
        and deletes the scratch copy once uploaded."""
        import ray.train

        folder = ckpt.save_sharded(self.engine, self._state(step), self.rank, self.cfg.scratch_dir)
        try:
            ray.train.report(
                metrics,
                checkpoint=ray.train.Checkpoint.from_directory(str(folder)),
                checkpoint_dir_name=ckpt.checkpoint_name(step),
                checkpoint_upload_mode=ray.train.CheckpointUploadMode.ASYNC,
                delete_local_checkpoint_after_upload=True,
            )
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    def export(self) -> None:
        """All ranks: consolidate the weights, run the probe, rank 0 writes the HF folder; reported as `hf_export`."""
        import ray.train
        from safetensors.torch import save_file

        from limo_ray.train.checkpoint import PROBE_FILE, consolidated_state_dict, generation_config_for

        state_dict = consolidated_state_dict(self.engine, self.cfg.zero_stage, prefix="lm.")
        probe_ids, probe_logits = self._probe()
        folder = None
        if self.rank == 0:
            assert state_dict is not None
            generation = generation_config_for(self.args.model_path, self.tokenizer, self.args.trust_remote_code)
            folder = ckpt.write_hf_export(
                self.model,
                state_dict,
                self.tokenizer,
                generation,
                self._state(self.args.total_steps),
                self.args.chat_template,
                self.cfg.scratch_dir,
            )
            save_file({"input_ids": probe_ids, "logits": probe_logits}, str(folder / PROBE_FILE))
        try:
            checkpoint = ray.train.Checkpoint.from_directory(str(folder)) if folder else None
            ray.train.report(
                {"step": self.args.total_steps, "exported": True},
                checkpoint=checkpoint,
                checkpoint_dir_name=ckpt.EXPORT_NAME,
            )
        finally:
            if folder:
                shutil.rmtree(folder, ignore_errors=True)

    @torch.no_grad()
    def _probe(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The trained model's fp32 logits on the first tokens of the first sample: the export must reproduce them."""
        ids, _ = self.data.sample(0)
        input_ids = torch.tensor(ids[: self.args.probe_tokens], dtype=torch.long)[None].to(self.device)
        self.engine.eval()
        logits = self.engine(input_ids=input_ids, use_cache=False).float().cpu()
        self.engine.train()
        return input_ids.cpu(), logits.contiguous()

    def cleanup(self) -> None:
        self.engine = self.model = self.sft_model = self.optimizer = self.scheduler = None
        self._hf_ds_config = None
        gc.collect()
        if self.cfg.use_gpu:
            torch.cuda.empty_cache()


def checkpoint_due(done: int, per_epoch: int, every_epochs: int, every_steps: int | None, stop: int) -> bool:
    """Whether the step just done (1-based) ends with a sharded checkpoint: every `every_epochs` epoch ends,
    every `every_steps` steps, and always the last step of this call (the end, or `max_steps`)."""
    epoch_end = done % per_epoch == 0 and (done // per_epoch) % every_epochs == 0
    return done == stop or epoch_end or bool(every_steps and done % every_steps == 0)


def _quiet_worker() -> None:
    """Keep the worker log about our steps: DeepSpeed's deprecated collectives warn on every call."""
    warnings.filterwarnings(
        "ignore", message=r".*(all_gather_into_tensor|reduce_scatter_tensor).*", category=FutureWarning
    )
    # Ray Train logs every report at INFO, metrics included (metrics.jsonl has them); its logger is named by file.
    try:
        from ray.train.v2._internal.execution import context as train_context

        logging.getLogger(train_context.__file__).setLevel(logging.WARNING)
    except ImportError:
        pass
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """The Ray Train entry point: `TorchTrainer(train_loop_per_worker, train_loop_config=asdict(WorkerArgs))`."""
    _quiet_worker()
    recipe = SFTRecipe(WorkerArgs(**config))
    try:
        recipe.setup()
        recipe.train()
    finally:
        if getattr(recipe, "rank", None) == 0:
            spent = ", ".join(f"{k} {v:.1f}s" for k, v in recipe.timings.items())
            logging.getLogger(__name__).info("rank 0 time by phase: %s", spent)
        recipe.cleanup()
