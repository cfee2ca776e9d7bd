"""The engine stage for real: vLLM (CPU build) inside Ray Data actors, and hub-name loading offline.

Plumbing only, on a random tiny Qwen2 (answers don't matter here; the toy world's calibration tests do that).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from limo_ray.config import ClusterConfig
from limo_ray.engine import EngineSpec, generate, init_ray
from tests.engine.hf_cache import install_as_hub_model
from tests.fixtures import build_tiny_checkpoint

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    import ray

    init_ray(ClusterConfig(), num_cpus=2)
    yield
    ray.shutdown()


def test_ray_data_stage_honours_per_row_n_and_isolates_a_poisoned_prompt(model_dir: Path, ray_cluster: None) -> None:
    import ray

    spec = EngineSpec(name="tiny", model=str(model_dir), max_model_len=256, device="cpu", system_prompt="Be brief.")
    rows = [{"problem": f"What is {i} + 1?", "n": 1 + i % 4} for i in range(24)]
    # A prompt far longer than the context: vLLM rejects it; only that row may fail.
    rows.append({"problem": "1 + 1 = 2. " * 400, "n": 2})
    ds = ray.data.from_items(rows, override_num_blocks=3)
    out = generate(ds, spec, {"temperature": 0.8, "max_tokens": 8}, batch_size=10).take_all()
    by_problem = {r["problem"]: r for r in out}
    assert len(out) == len(rows)
    for row in rows[:-1]:
        got = by_problem[row["problem"]]
        assert got["error"] is None
        assert len(got["completions"]) == row["n"] == len(got["completion_tokens"]) == len(got["finish_reasons"])
        assert all(0 < t <= 8 for t in got["completion_tokens"]) and got["prompt_tokens"] > 0
    poisoned = by_problem[rows[-1]["problem"]]
    assert poisoned["error"] and poisoned["completions"] == []


HUB_CHILD = """
import json
from limo_ray.engine import EngineActor, EngineSpec
spec = EngineSpec(name="hub", model="limo-ray-test/tiny-qwen2", max_model_len=256, device="cpu")
out = EngineActor(spec, {"temperature": 0.7, "max_tokens": 4})({"problem": ["What is 2 + 2?"], "n": [3]})
print("RESULT " + json.dumps({"completions": len(out["completions"][0]), "error": out["error"][0]}))
"""


def test_hub_name_loads_offline_from_the_hf_cache(model_dir: Path, tmp_path: Path) -> None:
    """A hub name resolves through the normal HF cache with HF_HUB_OFFLINE=1 (a fresh process: the hub library
    reads these variables at import)."""
    hub = tmp_path / "hf" / "hub"
    install_as_hub_model(model_dir, "limo-ray-test/tiny-qwen2", hub)
    env = {**os.environ, "HF_HUB_CACHE": str(hub), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", HUB_CHILD],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=Path(__file__).parents[2],
    )
    result = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    assert result, out.stdout[-2000:] + out.stderr[-3000:]
    assert json.loads(result[0].removeprefix("RESULT ")) == {"completions": 3, "error": None}
