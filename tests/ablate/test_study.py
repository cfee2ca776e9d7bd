"""`limo ablate`: the command's errors and help, the arms' files, resume (finished arms are never retrained), and
the summary's arithmetic over repeats.

Resume is checked on arms whose training manifests are complete (a study killed after them leaves exactly
that), not by training arms here: one ZeRO-3 training of the tiny model takes minutes on this shared 2-core
machine. Resuming a training killed mid-way is `run_training`'s own behaviour, tested in tests/faults and
tests/train.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from limo_ray.ablate import STUDIES
from limo_ray.ablate.arms import Arm, size_arms
from limo_ray.ablate.study import (
    ARMS_INDEX,
    RUNS_DIR,
    arm_config,
    arm_storage,
    run_study,
    study_checkpoints,
)
from limo_ray.ablate.summary import arm_scores, plot_study, render_markdown, write_study_summary
from limo_ray.cli import main
from limo_ray.config import RunConfig, load_config
from limo_ray.runfolder import Manifest
from limo_ray.train.data import TokenStats
from limo_ray.train.run import training_key
from tests.ablate.conftest import SyntheticRun, mark_curation_finished


def test_a_wrong_study_is_one_error_line_listing_the_studies(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ablate", "qualty", "--config", "tiny"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("limo: error: unknown study 'qualty': the studies are ")
    assert all(study in err for study in STUDIES)


def test_ablate_help_shows_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ablate", "--help"]) == 0
    out = capsys.readouterr().out
    assert "Example: `limo ablate quality --config tiny --run-dir runs/demo --repeats 3`" in " ".join(out.split())


@pytest.fixture
def config() -> RunConfig:
    return load_config("tiny", ["ablate.size.sizes=[5, 10, 30]"])


@pytest.fixture
def finished_run(synthetic_run: SyntheticRun, config: RunConfig, tmp_path: Path) -> Path:
    """A copy of the synthetic curation whose last stage says complete for `config`'s stages, as `limo run` leaves
    it (so `limo ablate` does not curate again)."""
    run_dir = tmp_path / "run"
    shutil.copytree(synthetic_run.run_dir, run_dir)
    mark_curation_finished(run_dir, config)
    return run_dir


def test_a_rerun_writes_the_same_arm_files(finished_run: Path, config: RunConfig) -> None:
    first = run_study(config, finished_run, "size", repeats=2, until="arms", log=lambda line: None)
    snapshot = {path: path.read_bytes() for path in first.datasets.values()}
    again = run_study(config, finished_run, "size", repeats=2, until="arms", log=lambda line: None)
    assert again.datasets == first.datasets
    assert {path: path.read_bytes() for path in again.datasets.values()} == snapshot
    index = json.loads((first.folder / ARMS_INDEX).read_text())
    assert [(row["label"], row["samples"]) for row in index] == [
        ("n5-s0", 5),
        ("n10-s0", 10),
        ("n30-s0", 30),
        ("n5-s1", 5),
        ("n10-s1", 10),
        ("n30-s1", 30),
    ]
    assert first.folder == finished_run / "ablate" / "size"


def complete_training(config: RunConfig, train_dir: Path, dataset: Path, student: str) -> Path:
    """The manifest a finished training leaves in `train_dir` (with the key `run_training` checks)."""
    key = training_key(config, dataset, config.models[student].path)
    extra = {"tokens": TokenStats().to_dict(), "steps": 3, "steps_per_epoch": 1, "final_loss": 0.5}
    extra["checkpoint"] = str(train_dir / "checkpoint")
    Manifest("train", [str(dataset)], 5, 5, 0, key, 9.0, True, extra=extra).write(train_dir)
    return train_dir / "manifest.json"


def test_a_killed_study_retrains_no_finished_arm(finished_run: Path, config: RunConfig) -> None:
    import ray

    built = run_study(config, finished_run, "size", repeats=2, until="arms", log=lambda line: None)
    # Killed after every arm but one had finished; that one (the whole curated set, the config's student and
    # seed) is what `limo run` trained in the run folder.
    full = next(arm for arm in built.arms if arm.label == "n30-s0")
    assert built.datasets[full.label].read_bytes() == (finished_run / "curate" / "dataset.jsonl").read_bytes()
    runs_own = complete_training(config, finished_run / "train", finished_run / "curate" / "dataset.jsonl", "student")
    manifests = [runs_own] + [
        complete_training(
            arm_config(config, arm),
            built.folder / RUNS_DIR / arm.label / "train",
            built.datasets[arm.label],
            arm.student,
        )
        for arm in built.arms
        if arm is not full
    ]
    before = {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in manifests}
    lines: list[str] = []
    resumed = run_study(config, finished_run, "size", repeats=2, until="train", log=lines.append)
    assert all(result.skipped and result.complete for result in resumed.trained.values())
    assert sorted(resumed.trained) == sorted(arm.label for arm in built.arms)
    assert {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in manifests} == before
    assert not ray.is_initialized()  # nothing was trained: Ray was never needed
    assert sum("complete already" in line for line in lines) == 6
    linked = built.folder / RUNS_DIR / full.label / "train"
    assert linked.is_symlink() and linked.resolve() == (finished_run / "train").resolve()
    assert resumed.trained[full.label].checkpoint == finished_run / "train" / "checkpoint"
    # Each repeat is its own training: the seed is in the key, and so is the arm's dataset.
    keys = {Manifest.read(path.parent).config_hash for path in manifests}  # type: ignore[union-attr]
    assert len(keys) == 6


def test_each_arm_trains_its_own_student_with_its_repeat_seed_and_storage(synthetic_run: SyntheticRun) -> None:
    config = load_config("tiny", ["train.storage_path=s3://bucket/limo"])
    arm = Arm("weak", 7, (), "weak")
    trained = arm_config(config, arm)
    assert (trained.seed, trained.train.model) == (7, "weak")
    assert arm_storage(config, Path("/r/ablate/backbone"), arm) == "s3://bucket/limo/ablate/backbone/weak-s7"
    assert arm_storage(load_config("tiny"), Path("/r/ablate/backbone"), arm) is None  # the arm's own run folder
    arms = size_arms(synthetic_run.curation, sizes=[5, 10], seed=0, student="student")
    trained_runs = {a.label: type("R", (), {"checkpoint": Path(f"/ck/{a.label}")})() for a in arms}
    assert study_checkpoints(config, arms, trained_runs) == {
        "student-base": "toy:student",
        "n5-s0": "/ck/n5-s0",
        "n10-s0": "/ck/n10-s0",
    }


# ----------------------------------------------------------------------------------------------- summary


def test_the_summary_gives_each_repeat_their_mean_and_sd_and_pools_repeats_in_the_paired_test(
    synthetic_run: SyntheticRun, tmp_path: Path
) -> None:
    arms = [a for seed in (0, 1) for a in size_arms(synthetic_run.curation, sizes=[5, 30], seed=seed, student="s")]
    items = 20
    # n30 answers items 0..13 (seed 0) and 0..15 (seed 1); n5 answers items 0..9 in both.
    correct = {"n30-s0": 14, "n30-s1": 16, "n5-s0": 10, "n5-s1": 10}
    outcomes = {label: {"toy": [[i < k] for i in range(items)]} for label, k in correct.items()}
    scores = arm_scores(["n5", "n30"], arms, outcomes, ["toy"], reference="n30")
    small, large = scores["n5"]["benchmarks"]["toy"], scores["n30"]["benchmarks"]["toy"]
    assert {seed: run["pass@1"] for seed, run in large["runs"].items()} == {"0": 70.0, "1": 80.0}
    assert (large["mean"], large["sd"]) == (75.0, 7.07)
    assert large["pooled"]["pass@1"] == 75.0 and large["pooled"]["n"] == items  # items, each with 2 samples
    assert "vs_reference" not in large
    paired = small["vs_reference"]
    assert paired["items"] == 2 * items  # repeat r against repeat r, both repeats' items
    assert paired["delta"] == 50.0 - 75.0
    assert paired["ci95"][0] < paired["delta"] < paired["ci95"][1] < 0
    assert scores["n5"]["samples"] == {"0": 5, "1": 5}
    data = {
        "study": "size",
        "config": "tiny",
        "seeds": [0, 1],
        "reference": "n30",
        "paper_finding": "less is more",
        "arms": scores,
        "bases": {"s-base": {"toy": {"pass@1": 40.0, "ci95": [30.0, 50.0], "n": 20}}},
        "files": {},
    }
    text = render_markdown(data, ["n5", "n30"], ["toy"])
    assert "| n30 | s | 30 | s0: 70.0 [" in text and "| 75.0 ± 7.07 |" in text and "| reference |" in text
    assert "-25.0 [" in text and "| s-base (no SFT) | | | 40.0 [30.0, 50.0] |" in text
    assert "**The paper.** less is more" in text
    assert plot_study("size", ["n5", "n30"], scores, ["toy"], tmp_path / "accuracy.png").stat().st_size > 0


def test_the_summary_is_written_from_the_eval_folders_cached_answers(
    synthetic_run: SyntheticRun, tmp_path: Path
) -> None:
    """The answers' keys are the runner's own (plan_items, checkpoint identities): what `limo eval` stored is read."""
    from limo_ray.benchmarks import BenchmarkRegistry
    from limo_ray.evaluate import EVAL_DIR, SAMPLES_FILE, SampleStore, plan_items
    from limo_ray.run import checkpoint_identity
    from tests.fixtures import eval_config, mini_benchmark

    registry = mini_benchmark(tmp_path, items=10, samples=2)
    config = eval_config(None, "eval.benchmarks=[mini]", registry_file=registry)
    arms = [
        a for seed in (0, 1) for a in size_arms(synthetic_run.curation, sizes=[5, 30], seed=seed, student="student")
    ]
    checkpoints = {"student-base": "toy:student", **{a.label: str(tmp_path / "ckpt" / a.label) for a in arms}}
    ids = {name: checkpoint_identity(name, path) for name, path in checkpoints.items()}
    plans = plan_items(config, BenchmarkRegistry.from_config(config.benchmarks), ["mini"], list(ids), None, ids)
    solved = {"student-base": 2, "n5-s0": 4, "n5-s1": 6, "n30-s0": 8, "n30-s1": 8}  # items solved, both samples
    folder = tmp_path / "ablate" / "size"
    with SampleStore(folder / EVAL_DIR / SAMPLES_FILE) as store:
        for plan in plans:
            item = int(plan.item.removeprefix("mini-"))
            store.append(
                {"key": key, "checkpoint": plan.checkpoint, "response": "", "correct": item < solved[plan.checkpoint]}
                for key in plan.keys
            )
    datasets = {a.label: tmp_path / f"{a.label}.jsonl" for a in arms}
    summary = write_study_summary(config, "size", folder, arms, datasets, checkpoints)
    data = json.loads((folder / "summary.json").read_text())
    small = data["arms"]["n5"]["benchmarks"]["mini"]
    assert {seed: run["pass@1"] for seed, run in small["runs"].items()} == {"0": 40.0, "1": 60.0}
    assert small["mean"] == 50.0 and small["vs_reference"]["delta"] == -30.0
    assert data["arms"]["n30"]["benchmarks"]["mini"]["pooled"]["pass@1"] == 80.0
    assert data["bases"]["student-base"]["mini"]["pass@1"] == 20.0
    assert data["reference"] == "n30" and "800" in data["paper_finding"]
    assert summary.read_text().startswith("# limo ablate size: tiny") and (folder / "accuracy.png").is_file()
