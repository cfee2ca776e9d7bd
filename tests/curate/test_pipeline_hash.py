"""A finished stage is reused only for the same settings; a seed or a rebuilt toy world changes them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from limo_ray.config import load_config
from limo_ray.curate.context import CurateContext
from limo_ray.curate.pipeline import curation_stages, run_curation
from limo_ray.errors import LimoError
from limo_ray.toy.references import resolve_references


def _pool(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"problem": t, "answer": "1"}) + "\n" for t in texts))
    return path


def _ctx(run_dir: Path) -> CurateContext:
    return CurateContext(run_dir=run_dir, log=lambda _: None)


def test_a_finished_stage_is_skipped_for_the_same_settings_and_refused_for_others_naming_them(tmp_path: Path) -> None:
    pool_a = _pool(tmp_path / "a.jsonl", ["What is 1 - 0?", "What is 2 - 1?"])
    pool_b = _pool(tmp_path / "b.jsonl", ["What is 3 - 2?"])
    run_dir = tmp_path / "run"
    config = load_config("tiny", [f"curate.pool.sources=[{pool_a}]"])
    first = run_curation(_ctx(run_dir), curation_stages(config, "ingest"))
    again = run_curation(_ctx(run_dir), curation_stages(config, "ingest"))
    assert not first[0].skipped and again[0].skipped
    other = load_config("tiny", [f"curate.pool.sources=[{pool_b}]"])
    with pytest.raises(LimoError, match=r"completed with other settings \(changed: pool.sources\)"):
        run_curation(_ctx(run_dir), curation_stages(other, "ingest"))


def test_changing_the_seed_reruns_dedup_whose_minhash_it_seeds(tmp_path: Path) -> None:
    texts = [f"A train leaves at {h} o'clock and travels {h * 10} miles. How fast is it going?" for h in range(1, 9)]
    pool = _pool(tmp_path / "pool.jsonl", texts)
    run_dir = tmp_path / "run"
    seeded = [f"curate.pool.sources=[{pool}]"]
    run_curation(_ctx(run_dir), curation_stages(load_config("tiny", [*seeded, "seed=0"]), "dedup"))
    same = run_curation(_ctx(run_dir), curation_stages(load_config("tiny", [*seeded, "seed=0"]), "dedup"))
    assert [o.skipped for o in same] == [True, True]
    # Ingest does not read the seed; dedup does, so its finished output is not reused.
    with pytest.raises(LimoError, match=r"dedup was completed with other settings \(changed: seed\)"):
        run_curation(_ctx(run_dir), curation_stages(load_config("tiny", [*seeded, "seed=1"]), "dedup"))


def test_toy_references_resolve_to_the_worlds_content_hashed_folder_without_building_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIMO_RAY_CACHE", str(tmp_path / "cache"))
    tiny = load_config("tiny", ["toy.size=test"])
    resolved = resolve_references(tiny, lambda _config: [])
    other_seed = resolve_references(load_config("tiny", ["toy.size=test", "toy.seed=5"]), lambda _config: [])
    pool = resolved.curate.pool.sources[0]
    assert pool.startswith(str(tmp_path / "cache" / "toy" / "test-")) and pool.endswith("/pool.jsonl")
    assert resolved.models["weak"].path == str(Path(pool).parent / "weak")
    assert resolved.benchmarks.paths["toy"] == str(Path(pool).parent / "benchmark.jsonl")
    assert other_seed.curate.pool.sources[0] != pool  # another world, so other stage keys
    assert not (tmp_path / "cache").exists()


def test_the_first_stage_says_how_many_sources_it_reads_and_later_ones_how_many_problems(
    tmp_path: Path, shared_data: Path
) -> None:
    """Even a later stage that reads files too (models, benchmarks) and got no problems counts problems."""
    pool = tmp_path / "pool.jsonl"
    pool.write_text('{"problem": ""}\nnot json\n')  # no row survives ingest
    config = load_config("tiny", [f"curate.pool.sources=[{pool}]", f"benchmarks.data_root={shared_data}"])
    said: list[str] = []
    stages = curation_stages(config, "decontaminate")
    assert stages[-1].inputs()  # decontaminate reads the benchmark files
    run_curation(CurateContext(run_dir=tmp_path / "run", log=said.append), stages)
    starts = [line for line in said if line.endswith(" in")]
    assert starts == [
        "[curate] ingest: 1 source(s) in",
        "[curate] dedup: 0 problems in",
        "[curate] decontaminate: 0 problems in",
    ]
