"""Faults around the run folder: two commands on one folder, and a disk that fills up mid-stage."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from limo_ray.runfolder import LOCK_FILE, Manifest

pytestmark = pytest.mark.integration

CURATE = [sys.executable, "-m", "limo_ray.cli", "curate", "--config", "tiny", "--set", "toy.size=test"]


def _limo(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CURATE, *args], capture_output=True, text=True, timeout=timeout)


def test_a_second_command_on_a_held_run_folder_fails_clearly_and_a_killed_holder_frees_it(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from limo_ray.runfolder import run_lock\n"
            f"with run_lock({str(run_dir)!r}):\n    print('held', flush=True); time.sleep(600)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        second = _limo("--until", "ingest", "--run-dir", str(run_dir))
        assert second.returncode == 2
        assert f"run folder {run_dir} is in use by pid {holder.pid}" in second.stderr
        assert not (run_dir / "curate").exists()  # it did nothing
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    third = _limo("--until", "ingest", "--run-dir", str(run_dir))
    assert third.returncode == 0, third.stderr[-2000:]
    assert Manifest.read(run_dir / "curate" / "ingest").complete
    assert (run_dir / LOCK_FILE).is_file()  # the lock file stays; the kernel lock went with the process


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 96 KiB tmpfs: room for the config and ingest's output (about 80 KiB in pages), not for dedup's too."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_fails_clearly_leaves_no_partial_output_and_the_rerun_resumes(small_disk: Path) -> None:
    run_dir = small_disk / "run"
    full = _limo("--until", "dedup", "--run-dir", str(run_dir))
    assert full.returncode == 28, full.stderr[-3000:]
    assert "no space left on the device" in full.stderr and "run the same command again" in full.stderr
    assert "Traceback" not in full.stderr
    # Nothing half-written is left under a final name, and no stage claims to be complete without its outputs.
    leftovers = [p for p in run_dir.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []
    for manifest_path in run_dir.rglob("manifest.json"):
        manifest = json.loads(manifest_path.read_text())
        assert manifest["complete"] and (manifest_path.parent / "problems.parquet").is_file()
    finished = {p.parent.name for p in run_dir.rglob("manifest.json")}
    # The disk is sized for ingest's output and not dedup's: the re-run must resume past a finished stage.
    assert finished == {"ingest"}

    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    began = time.time()
    again = _limo("--until", "dedup", "--run-dir", str(run_dir))
    assert again.returncode == 0, again.stderr[-3000:]
    for stage in ("ingest", "dedup"):
        manifest = Manifest.read(run_dir / "curate" / stage)
        assert manifest is not None and manifest.complete
    # The stage finished before the disk filled is not redone, and the re-run says so.
    assert os.path.getmtime(run_dir / "curate" / "ingest" / "manifest.json") < began
    assert "[curate] ingest: complete, skipped" in again.stdout
    assert os.path.getmtime(run_dir / "curate" / "dedup" / "manifest.json") >= began
