"""Checkpoints without Ray: what each rank reads on resume, where shards are staged, when a save is due, and how
the export is put in place."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from limo_ray.train.checkpoint import (
    STATE_FILE,
    copy_tree_atomic,
    fetch_for_rank,
    files_for_rank,
    is_export,
    place_export,
    rank_view,
    scratch_folder,
)
from limo_ray.train.recipe import checkpoint_due

# What DeepSpeed 0.19 writes for ZeRO-3 on 2 ranks (bf16), plus our state file, as `save_sharded` lays it out.
TWO_RANKS = [
    STATE_FILE,
    "ds/zero_pp_rank_0_mp_rank_00_model_states.pt",
    "ds/zero_pp_rank_1_mp_rank_00_model_states.pt",
    "ds/bf16_zero_pp_rank_0_mp_rank_00_optim_states.pt",
    "ds/bf16_zero_pp_rank_1_mp_rank_00_optim_states.pt",
    "latest",
    "zero_to_fp32.py",
]


def test_each_rank_selects_only_its_own_partitions_and_the_shared_files() -> None:
    shared = [STATE_FILE, "latest", "zero_to_fp32.py"]
    assert files_for_rank(TWO_RANKS, 0) == sorted(
        [*shared, "ds/zero_pp_rank_0_mp_rank_00_model_states.pt", "ds/bf16_zero_pp_rank_0_mp_rank_00_optim_states.pt"]
    )
    assert files_for_rank(TWO_RANKS, 1) == sorted(
        [*shared, "ds/zero_pp_rank_1_mp_rank_00_model_states.pt", "ds/bf16_zero_pp_rank_1_mp_rank_00_optim_states.pt"]
    )
    # Rank 1 is not rank 10, 11, ...; ZeRO < 3's consolidated model states are every rank's.
    many = ["ds/zero_pp_rank_10_mp_rank_00_optim_states.pt", "ds/mp_rank_00_model_states.pt"]
    assert files_for_rank(many, 1) == ["ds/mp_rank_00_model_states.pt"]


def _fake_checkpoint(root: Path) -> Path:
    folder = root / "ds_checkpoints" / "step_000004"
    for name in TWO_RANKS:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(name)
    return folder


def test_from_remote_storage_a_rank_copies_only_its_files_into_scratch(tmp_path: Path) -> None:
    folder = _fake_checkpoint(tmp_path / "bucket")
    # A filesystem that is not local (as s3:// is), over the same files.
    remote = pafs.SubTreeFileSystem(str(tmp_path / "bucket"), pafs.LocalFileSystem())
    fetched = fetch_for_rank(remote, "ds_checkpoints/step_000004", rank=1, scratch_dir=str(tmp_path / "nvme"))
    got = sorted(str(p.relative_to(fetched)) for p in fetched.rglob("*") if p.is_file())
    assert got == files_for_rank(TWO_RANKS, 1)
    assert fetched.parent == tmp_path / "nvme"
    assert (fetched / "ds/bf16_zero_pp_rank_1_mp_rank_00_optim_states.pt").read_text() == (
        folder / "ds/bf16_zero_pp_rank_1_mp_rank_00_optim_states.pt"
    ).read_text()


class _Checkpoint:
    def __init__(self, filesystem: pafs.FileSystem, path: str) -> None:
        self.filesystem, self.path = filesystem, path


def test_rank_view_reads_local_storage_in_place_and_cleans_up_a_remote_copy(tmp_path: Path) -> None:
    folder = _fake_checkpoint(tmp_path / "bucket")
    with rank_view(_Checkpoint(pafs.LocalFileSystem(), str(folder)), 0) as view:
        assert view == folder  # local or NFS: nothing copied
    remote = pafs.SubTreeFileSystem(str(tmp_path / "bucket"), pafs.LocalFileSystem())
    with rank_view(_Checkpoint(remote, "ds_checkpoints/step_000004"), 0, str(tmp_path / "nvme")) as view:
        assert view.parent == tmp_path / "nvme" and not (view / "ds/zero_pp_rank_1_mp_rank_00_model_states.pt").exists()
    assert not view.exists() and folder.exists()


def test_shards_are_staged_in_the_configured_scratch_dir(tmp_path: Path) -> None:
    staged = scratch_folder("limo-ds-rank0-", str(tmp_path / "mnt" / "scratch"))
    assert staged.parent == tmp_path / "mnt" / "scratch" and staged.name.startswith("limo-ds-rank0-")
    default = scratch_folder("limo-ds-rank0-")  # no scratch_dir: the system temp folder, as before
    assert default.parent == Path(tempfile.gettempdir())
    default.rmdir()


@pytest.mark.parametrize(
    ("every_epochs", "every_steps", "stop", "due"),
    [
        (1, None, 12, [3, 6, 9, 12]),  # every epoch end (tiny)
        (2, None, 12, [6, 12]),  # every 2nd epoch end, and the last step
        (3, None, 12, [9, 12]),  # 4 epochs of 3 steps: epoch 3, then the end
        (5, None, 12, [12]),  # more epochs per save than the run has: only the end
        (5, 4, 12, [4, 8, 12]),  # plus every 4 steps
        (2, None, 7, [6, 7]),  # max_steps=7: the stop is checkpointed, so a later call resumes there
    ],
)
def test_checkpoint_interval_in_epochs_and_steps_always_ends_with_one(
    every_epochs: int, every_steps: int | None, stop: int, due: list[int]
) -> None:
    assert [done for done in range(1, stop + 1) if checkpoint_due(done, 3, every_epochs, every_steps, stop)] == due


def _export(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"weights")
    (folder / STATE_FILE).write_text("{}")
    return folder


def test_the_export_is_renamed_into_place_on_the_same_filesystem(tmp_path: Path) -> None:
    source = _export(tmp_path / "train" / "ds_checkpoints" / "hf_export")
    inode = (source / "model.safetensors").stat().st_ino
    old = _export(tmp_path / "train" / "checkpoint")  # a previous run's: replaced
    (old / "stale.txt").write_text("old")
    placed = place_export(str(source), pafs.LocalFileSystem(), tmp_path / "train" / "checkpoint")
    assert not source.exists() and (placed / "model.safetensors").stat().st_ino == inode  # moved, not copied
    assert not (placed / "stale.txt").exists() and oct(placed.stat().st_mode & 0o777) == "0o755"
    assert is_export(str(source)) and is_export("s3://bucket/run/ds_checkpoints/hf_export/")
    assert not is_export(str(tmp_path / "ds_checkpoints" / "step_000004"))


def test_the_export_is_copied_from_storage_that_is_not_local(tmp_path: Path) -> None:
    source = _export(tmp_path / "bucket" / "ds_checkpoints" / "hf_export")
    remote = pafs.SubTreeFileSystem(str(tmp_path / "bucket"), pafs.LocalFileSystem())
    placed = place_export("ds_checkpoints/hf_export", remote, tmp_path / "train" / "checkpoint")
    assert source.exists() and (placed / "model.safetensors").read_bytes() == b"weights"
    again = copy_tree_atomic("ds_checkpoints/hf_export", remote, tmp_path / "train" / "checkpoint")
    assert sorted(p.name for p in again.parent.iterdir()) == ["checkpoint"]  # no staging or .old left behind
