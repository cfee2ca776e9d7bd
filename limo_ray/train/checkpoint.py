"""Checkpoints: sharded DeepSpeed states for resume, and the consolidated HF checkpoint at the end.

Every rank saves its own ZeRO shards into a local folder and hands it to `ray.train.report`, which merges the
ranks' folders into one checkpoint under `storage_path` (a local folder here; `s3://`, `gs://` or NFS on a
cluster, where ranks do not share a disk). A `limo_state.json` beside the shards says which step they hold.
Resume asks Ray Train for the latest checkpoint and loads it with the same world size (ZeRO partitions are
per rank; a different `num_workers` cannot reuse them).

The HF export gathers the full weights on rank 0 (one layer at a time under ZeRO-3), writes safetensors, the
tokenizer with the chat template the model was trained with, and a generation config whose end-of-sequence
ids include the end-of-turn token the model learnt to emit (so vLLM stops there). It is reported to Ray Train
like any checkpoint, named `hf_export`, and the driver copies it into `train/checkpoint/`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

STATE_FILE = "limo_state.json"
DS_TAG = "ds"
EXPORT_NAME = "hf_export"
PROBE_FILE = "export_probe.safetensors"


def checkpoint_name(step: int) -> str:
    return f"step_{step:06d}"


def save_sharded(engine: Any, state: dict[str, Any], rank: int) -> Path:
    """All ranks: write this rank's DeepSpeed shards (+ rank 0: the state file) into a fresh local folder."""
    folder = Path(tempfile.mkdtemp(prefix=f"limo-ds-rank{rank}-"))
    (folder / DS_TAG).mkdir()  # every rank's own disk: DeepSpeed only creates it on rank 0
    engine.save_checkpoint(str(folder), tag=DS_TAG, save_latest=rank == 0)
    if rank == 0:
        (folder / STATE_FILE).write_text(json.dumps({"kind": "deepspeed", **state}), encoding="utf-8")
    return folder


def read_state(folder: str | Path) -> dict[str, Any]:
    return json.loads((Path(folder) / STATE_FILE).read_text(encoding="utf-8"))


def load_sharded(engine: Any, folder: str | Path) -> None:
    load_path, _ = engine.load_checkpoint(
        str(folder), tag=DS_TAG, load_optimizer_states=True, load_lr_scheduler_states=True
    )
    if load_path is None:
        raise RuntimeError(f"DeepSpeed found no checkpoint under {folder}/{DS_TAG}")


def consolidated_state_dict(engine: Any, zero_stage: int, prefix: str = "") -> dict[str, Any] | None:
    """All ranks: the full state dict on rank 0 (None elsewhere), in the training dtype, `prefix` stripped."""
    import torch.distributed as dist

    if zero_stage == 3:
        state = engine._zero3_consolidated_16bit_state_dict()
    else:
        state = engine.module.state_dict() if dist.get_rank() == 0 else None
    if state is None:
        return None
    return {key.removeprefix(prefix): value for key, value in state.items()}


def generation_config_for(model_path: str, tokenizer: Any, trust_remote_code: bool = False) -> Any:
    """The base model's generation config, with the tokenizer's end-of-turn token among its eos ids."""
    from transformers import GenerationConfig

    try:
        config = GenerationConfig.from_pretrained(model_path, trust_remote_code=trust_remote_code)
    except OSError:
        config = GenerationConfig()
    eos = config.eos_token_id
    eos_ids = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in eos_ids:
        eos_ids.insert(0, tokenizer.eos_token_id)
    config.eos_token_id = eos_ids[0] if len(eos_ids) == 1 else eos_ids
    if config.pad_token_id is None and tokenizer.pad_token_id is not None:
        config.pad_token_id = tokenizer.pad_token_id
    return config


def write_hf_export(
    module: Any,
    state_dict: dict[str, Any],
    tokenizer: Any,
    generation_config: Any,
    state: dict[str, Any],
    chat_template: str | None = None,
) -> Path:
    """Rank 0: safetensors + config + tokenizer (+ chat template) + generation config, into a fresh local folder."""
    folder = Path(tempfile.mkdtemp(prefix="limo-hf-export-"))
    module.config.use_cache = True  # off for training; serving wants the KV cache
    module.save_pretrained(str(folder), state_dict=state_dict, safe_serialization=True)
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    tokenizer.save_pretrained(str(folder))
    generation_config.save_pretrained(str(folder))
    (folder / STATE_FILE).write_text(json.dumps({"kind": EXPORT_NAME, **state}), encoding="utf-8")
    return folder


def copy_tree_atomic(source: str, filesystem: Any, destination: Path) -> Path:
    """Copy a checkpoint folder (any pyarrow filesystem) to a local folder: a temp sibling, then one rename."""
    import pyarrow.fs as pafs

    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", dir=destination.parent))
    try:
        pafs.copy_files(
            source, str(staging), source_filesystem=filesystem, destination_filesystem=pafs.LocalFileSystem()
        )
        staging.chmod(0o755)  # mkdtemp's 0700 would hide the model from a server running as another user
        old = destination.with_name(f".{destination.name}.old")
        if destination.exists():
            os.replace(destination, old)
        os.replace(staging, destination)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return destination
