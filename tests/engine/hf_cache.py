"""Lay a local model folder out as a Hugging Face hub cache entry, so hub-name loading can be tested offline."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path


def install_as_hub_model(model_dir: Path, repo_id: str, hub_cache: Path) -> Path:
    """Copy `model_dir` into `hub_cache` as `repo_id` at a fake commit; returns the snapshot folder.

    The layout is huggingface_hub's: `models--{org}--{name}/refs/main` holds the commit hash and
    `snapshots/{hash}/` the files, which is what `from_pretrained(repo_id)` and vLLM resolve with
    HF_HUB_OFFLINE=1.
    """
    commit = hashlib.sha1(repo_id.encode()).hexdigest()
    repo_root = hub_cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo_root / "snapshots" / commit
    if snapshot.exists():
        shutil.rmtree(snapshot)
    shutil.copytree(model_dir, snapshot)
    (repo_root / "refs").mkdir(parents=True, exist_ok=True)
    (repo_root / "refs" / "main").write_text(commit)
    return snapshot
