"""The run folder: atomic writes, the resolved config, and the manifests that say a stage is complete.

A file is written to a temporary name in its folder and renamed into place, so a reader never sees half of
it, and a killed run leaves either the old file or the new one. A stage is complete only when its
`manifest.json` says `complete: true`; the manifest also records what produced the output.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from limo_ray import __version__
from limo_ray.config import RunConfig, parse_yaml, validate_config
from limo_ray.errors import LimoError

CONFIG_FILE = "config.yaml"
MANIFEST_FILE = "manifest.json"
LOCK_FILE = ".lock"


@contextmanager
def run_lock(run_dir: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold the run folder for this process: a second `limo` command on the same folder fails at once, clearly.

    Two writers would both draw the same missing samples and race on the manifests. `flock` is released by the
    kernel when the holder dies, so a SIGKILLed run never leaves a stale lock behind.
    """
    import fcntl

    folder = Path(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    handle = open(path, "a+")  # noqa: SIM115 - held open for the lifetime of the lock
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise LimoError(
                f"run folder {folder} is in use by {holder}: wait for it to finish, or use another --run-dir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}")
        handle.flush()
        yield path
    finally:
        handle.close()


@contextmanager
def atomic_open(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Write to `path` atomically: a temp file in the same folder, fsync, then rename over `path`."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    with atomic_open(path) as handle:
        handle.write(text.encode("utf-8"))
    return Path(path)


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> Path:
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False) + "\n")


def write_jsonl_atomic(path: str | os.PathLike[str], rows: Sequence[Mapping[str, Any]]) -> Path:
    with atomic_open(path) as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False).encode("utf-8") + b"\n")
    return Path(path)


def default_run_dir(config: RunConfig) -> Path:
    return Path("runs") / config.name


def write_resolved_config(config: RunConfig, run_dir: str | os.PathLike[str]) -> list[str]:
    """Store the config this command runs with; return the settings that differ from the one stored before.

    A run folder may be re-run with changed settings: each stage guards its own outputs by the key of the
    settings it read (`settings_key`), so a change no finished stage depends on (`eval.concurrency`) just
    takes effect, and one a finished stage depends on stops that stage, naming what changed.
    """
    path = Path(run_dir) / CONFIG_FILE
    changed: list[str] = []
    if path.is_file():
        changed = changed_settings(
            read_resolved_config(run_dir).model_dump(mode="json"), config.model_dump(mode="json")
        )
        if not changed:
            return []
    write_text_atomic(path, config.to_yaml())
    return changed


def settings_key(settings: Mapping[str, Any]) -> str:
    """A short, stable hash of a settings view (JSON-able)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def changed_settings(before: Any, after: Any, prefix: str = "") -> list[str]:
    """Dotted names of the leaves that differ between two settings views (`train.learning_rate`)."""
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        names: list[str] = []
        for key in sorted({*before, *after}, key=str):
            names += changed_settings(before.get(key), after.get(key), f"{prefix}{key}.")
        return names
    return [] if before == after else [prefix.rstrip(".") or "(all)"]


def read_resolved_config(run_dir: str | os.PathLike[str]) -> RunConfig:
    path = Path(run_dir) / CONFIG_FILE
    return validate_config(parse_yaml(path.read_text(encoding="utf-8"), str(path)) or {}, origin=str(path))


@dataclass
class Manifest:
    """What a stage produced and from what; `complete` is written last, by the stage itself."""

    stage: str
    inputs: list[str]
    rows_in: int
    rows_out: int
    rows_rejected: int
    config_hash: str
    seconds: float
    complete: bool
    produced_by: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def write(self, folder: str | os.PathLike[str]) -> Path:
        return write_json_atomic(Path(folder) / MANIFEST_FILE, asdict(self))

    @classmethod
    def read(cls, folder: str | os.PathLike[str]) -> Manifest | None:
        path = Path(folder) / MANIFEST_FILE
        if not path.is_file():
            return None
        try:
            return cls(**json.loads(path.read_text(encoding="utf-8")))
        except (json.JSONDecodeError, TypeError) as exc:
            raise LimoError(f"{path} is not a limo-ray manifest ({exc}): delete the folder to redo the stage") from exc


def is_complete(folder: str | os.PathLike[str], config_hash: str | None = None) -> bool:
    manifest = Manifest.read(folder)
    if manifest is None or not manifest.complete:
        return False
    return config_hash is None or manifest.config_hash == config_hash


def provenance() -> dict[str, str]:
    """Who produced an output: versions, host, command and time (never environment variables: they hold secrets)."""
    return {
        "limo_ray": __version__,
        "python": platform.python_version(),
        "host": socket.gethostname(),
        "command": " ".join(Path(sys.argv[0]).name if i == 0 else a for i, a in enumerate(sys.argv)),
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
