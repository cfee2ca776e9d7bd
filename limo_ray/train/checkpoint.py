"""Checkpoints: sharded DeepSpeed states for resume, and the consolidated HF checkpoint at the end.

Every rank saves its own ZeRO shards into a folder on its scratch disk (`train.scratch_dir`, NVMe on a cluster;
the system temp folder by default) and hands it to `ray.train.report`, which merges the ranks' folders into one
checkpoint under `storage_path` (a local folder here; `s3://`, `gs://` or NFS on a cluster, where ranks do not
share a disk) and deletes the scratch copy once uploaded. A `limo_state.json` beside the shards says which step
they hold. Resume asks Ray Train for the latest checkpoint and loads it with the same world size (ZeRO
partitions are per rank; a different `num_workers` cannot reuse them); each rank reads only its own partition
files: straight from the storage folder when it is a local or NFS path, else copied to scratch first
(`rank_view`), never the whole checkpoint on every rank.

The HF export gathers the full weights on rank 0 (one layer at a time under ZeRO-3), writes safetensors, the
tokenizer with the chat template the model was trained with, and a generation config whose end-of-sequence
ids include the end-of-turn token the model learnt to emit (so vLLM stops there). It is reported to Ray Train
like any checkpoint, named `hf_export`, and the driver moves it into `train/checkpoint/` (`place_export`: one
rename when storage is on the run folder's filesystem, a copy from `s3://` and the like).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

STATE_FILE = "limo_state.json"
DS_TAG = "ds"
EXPORT_NAME = "hf_export"
PROBE_FILE = "export_probe.safetensors"


def checkpoint_name(step: int) -> str:
    return f"step_{step:06d}"


def is_export(path: str) -> bool:
    """Whether a Ray Train checkpoint path is the HF export (read from its name: the folder may be gone)."""
    return PurePosixPath(path.rstrip("/")).name == EXPORT_NAME


def scratch_folder(prefix: str, scratch_dir: str | None = None) -> Path:
    """A fresh folder on this node's scratch disk (`train.scratch_dir`; None = the system temp folder)."""
    if scratch_dir is not None:
        Path(scratch_dir).mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=scratch_dir))


def save_sharded(engine: Any, state: dict[str, Any], rank: int, scratch_dir: str | None = None) -> Path:
    """All ranks: write this rank's DeepSpeed shards (+ rank 0: the state file) into a fresh scratch folder."""
    folder = scratch_folder(f"limo-ds-rank{rank}-", scratch_dir)
    (folder / DS_TAG).mkdir()  # every rank's own disk: DeepSpeed only creates it on rank 0
    engine.save_checkpoint(str(folder), tag=DS_TAG, save_latest=rank == 0)
    if rank == 0:
        (folder / STATE_FILE).write_text(json.dumps({"kind": "deepspeed", **state}), encoding="utf-8")
    return folder


def read_state(folder: str | Path) -> dict[str, Any]:
    return json.loads((Path(folder) / STATE_FILE).read_text(encoding="utf-8"))


# DeepSpeed names a rank's ZeRO partition files `[bf16_]zero_pp_rank_{rank}_mp_rank_{mp:02d}_{model,optim}_states.pt`.
_RANK_FILE = re.compile(r"(?:^|_)zero_pp_rank_(\d+)_mp_rank_")


def files_for_rank(names: Iterable[str], rank: int) -> list[str]:
    """The files of a sharded checkpoint that `rank` reads to resume: its own ZeRO partitions, and every file
    that is no rank's partition (the state file, DeepSpeed's `latest`, ZeRO < 3's shared model states)."""
    keep = []
    for name in names:
        match = _RANK_FILE.search(PurePosixPath(name).name)
        if match is None or int(match.group(1)) == rank:
            keep.append(name)
    return sorted(keep)


def is_local(filesystem: Any) -> bool:
    """A path every process on this node can open directly (a local disk or an NFS mount)."""
    import pyarrow.fs as pafs

    return isinstance(filesystem, pafs.LocalFileSystem)


def fetch_for_rank(filesystem: Any, path: str, rank: int, scratch_dir: str | None = None) -> Path:
    """Copy what `rank` needs of the checkpoint at `path` (any pyarrow filesystem) into a fresh scratch folder."""
    import pyarrow.fs as pafs

    root = path.rstrip("/")
    infos = filesystem.get_file_info(pafs.FileSelector(root, recursive=True))
    names = [info.path[len(root) :].lstrip("/") for info in infos if info.type == pafs.FileType.File]
    folder = scratch_folder(f"limo-resume-rank{rank}-", scratch_dir)
    try:
        for name in files_for_rank(names, rank):
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            with filesystem.open_input_stream(f"{root}/{name}") as source, target.open("wb") as out:
                shutil.copyfileobj(source, out, 16 << 20)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder


@contextmanager
def rank_view(checkpoint: Any, rank: int, scratch_dir: str | None = None) -> Iterator[Path]:
    """A local folder holding what `rank` needs of a Ray Train checkpoint: the storage folder itself when it is
    local (nothing copied), else this rank's files copied to scratch, deleted after use."""
    if is_local(checkpoint.filesystem):
        yield Path(checkpoint.path)
        return
    folder = fetch_for_rank(checkpoint.filesystem, checkpoint.path, rank, scratch_dir)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


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
    scratch_dir: str | None = None,
) -> Path:
    """Rank 0: safetensors + config + tokenizer (+ chat template) + generation config, into a fresh scratch folder."""
    folder = scratch_folder("limo-hf-export-", scratch_dir)
    module.config.use_cache = True  # off for training; serving wants the KV cache
    module.save_pretrained(str(folder), state_dict=state_dict, safe_serialization=True)
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    tokenizer.save_pretrained(str(folder))
    generation_config.save_pretrained(str(folder))
    (folder / STATE_FILE).write_text(json.dumps({"kind": EXPORT_NAME, **state}), encoding="utf-8")
    return folder


def place_export(source: str, filesystem: Any, destination: Path) -> Path:
    """Put the export at `source` (a path on `filesystem`) at `destination`, replacing what was there.

    One rename when `source` is on the same local filesystem as `destination` (the export then leaves Ray
    Train's storage: see `run.py` for how a re-run copes); else a copy into a temp sibling, then one rename.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    if is_local(filesystem) and os.stat(source).st_dev == os.stat(destination.parent).st_dev:
        Path(source).chmod(0o755)  # the model must be readable by a server running as another user
        _swap_in(Path(source), destination)
        return destination
    return copy_tree_atomic(source, filesystem, destination)


def _swap_in(folder: Path, destination: Path) -> None:
    """Rename `folder` to `destination`; an existing `destination` is moved aside first, then deleted."""
    old = destination.with_name(f".{destination.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if destination.exists():
        os.replace(destination, old)
    os.replace(folder, destination)
    shutil.rmtree(old, ignore_errors=True)


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
        _swap_in(staging, destination)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return destination
