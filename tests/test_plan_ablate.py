"""`limo plan --ablate STUDY`: one training per arm per repeat, each the run plan's own training estimate, the
generation a study needs beyond the curation, and one-line refusals."""

from __future__ import annotations

import math

import pytest

from limo_ray.ablate import STUDIES
from limo_ray.cli import main
from limo_ray.config import load_config
from limo_ray.curate.baseline import OVERSAMPLE
from limo_ray.errors import LimoError
from limo_ray.plan import Plan, StagePlan, format_plan, make_plan
from limo_ray.plan.ablate import make_study_plan

# limo-32b's arms per repeat: sizes 200/400/817, L1..L5, three bins, four selections, two students.
ARMS = {"size": 3, "quality": 5, "difficulty": 3, "selection": 4, "backbone": 2}


def rows(plan: Plan, prefix: str) -> list[StagePlan]:
    return [s for s in plan.stages if s.name.startswith(prefix)]


@pytest.fixture(scope="module")
def run_plan() -> Plan:
    return make_plan(load_config("limo-32b"))


@pytest.mark.parametrize("study", ["size", "quality", "difficulty", "selection"])
def test_trainings_and_evaluated_checkpoints_scale_with_arms_times_repeats(study: str) -> None:
    config = load_config("limo-32b")
    once, thrice = (make_study_plan(config, study, repeats=r) for r in (1, 3))
    assert len(rows(once, "train[")) == ARMS[study] and len(rows(thrice, "train[")) == 3 * ARMS[study]
    for field in ("tokens", "wall_s", "gpu_hours", "cost_usd"):
        total_once = sum(getattr(s, field) for s in rows(once, "train["))
        assert sum(getattr(s, field) for s in rows(thrice, "train[")) == pytest.approx(3 * total_once), field
    # Each student's base model, then every arm's checkpoint; the paper's ten benchmarks ask 2,533 answers each.
    assert once.stage("eval").generations == (1 + ARMS[study]) * 2_533
    assert thrice.stage("eval").generations == (1 + 3 * ARMS[study]) * 2_533
    assert thrice.heading.startswith(f"plan for `limo ablate {study}` with 'limo-32b': {ARMS[study]} arms x 3")


def test_each_arm_is_the_run_plans_training_estimate(run_plan: Plan) -> None:
    plan = make_study_plan(load_config("limo-32b"), "size", repeats=2)
    assert [s.name for s in rows(plan, "train[")] == [
        f"train[n{n}-s{seed}]" for seed in (42, 43) for n in (200, 400, 817)
    ]
    # The largest arm is the whole curated set: the same row as the run's own training, numbers and all.
    train = run_plan.stage("train")
    for arm in (plan.stage("train[n817-s42]"), plan.stage("train[n817-s43]")):
        assert (arm.tokens, arm.wall_s, arm.gpu_hours, arm.gpus) == (train.tokens, train.wall_s, train.gpu_hours, 16)
    assert plan.stage("train[n200-s42]").tokens == 200 * 15 * (200 + 10_000)
    # Only the arm `limo run` trained (curated set, the config's seed) is the one a finished run folder lends.
    text = format_plan(plan)
    assert text.count("limo run's own training") == 1 and "train[n817-s42]: 817 samples" in text
    assert not rows(plan, "ablate.")  # nested subsets of the curated set: nothing generated


def test_quality_draws_only_the_chains_the_curation_lacks(run_plan: Plan) -> None:
    chained = run_plan.stage("curate.balance").problems_out
    assert not rows(make_study_plan(load_config("limo-32b"), "quality"), "ablate.")  # the curation's 4 per model
    plan = make_study_plan(load_config("limo-32b", ["ablate.quality.chains_per_model=6"]), "quality")
    chains = rows(plan, "ablate.chains[")
    assert [s.name for s in chains] == ["ablate.chains[r1]", "ablate.chains[strong]", "ablate.chains[qwq]"]
    assert all(s.problems_in == chained and s.generations == chained * 2 for s in chains)


def test_selection_runs_the_strong_filter_alone_and_chains_three_arms(run_plan: Plan) -> None:
    plan = make_study_plan(load_config("limo-32b"), "selection", repeats=2)
    weak = run_plan.stage("curate.weak")
    clean, hard = weak.problems_in, weak.problems_out
    band = run_plan.stage("curate.strong").problems_out
    wanted = math.ceil(817 * OVERSAMPLE)
    probe = min(clean, 2 * math.ceil(wanted * clean / band))
    strong = plan.stage("ablate.strong")
    # The probe's problems that passed the weak filter were measured by the curation: only the rest are sampled.
    assert strong.problems_in == probe - round(probe * hard / clean)
    assert strong.generations == round(strong.problems_in * (0.6 * 8 + 0.4 * 32))
    assert all(s.problems_in == 3 * wanted * 2 for s in rows(plan, "ablate.chains["))
    assert [s.name for s in rows(plan, "train[")][:4] == [
        "train[curated-s42]",
        "train[random-s42]",
        "train[weak_only-s42]",
        "train[strong_only-s42]",
    ]


def test_backbone_trains_and_evaluates_each_student() -> None:
    plan = make_study_plan(load_config("limo-32b"), "backbone", repeats=2)
    assert [(s.name, s.model) for s in rows(plan, "train[")] == [
        ("train[student-s42]", "student"),
        ("train[qwen15-s42]", "qwen15"),
        ("train[student-s43]", "student"),
        ("train[qwen15-s43]", "qwen15"),
    ]
    assert [s.name for s in rows(plan, "eval")] == ["eval[student]", "eval[qwen15]"]
    assert {s.generations for s in rows(plan, "eval")} == {3 * 2_533}
    # Both backbones are sized from their architectures (Qwen1.5-32B: 32.5B parameters), none is guessed.
    assert not [note for note in plan.notes if "architecture unknown" in note], plan.notes
    with pytest.raises(LimoError, match="two or more students"):
        make_study_plan(load_config("limo-32b", ["ablate.backbone.students=[student]"]), "backbone")


def test_the_tiny_study_plans_for_cpu() -> None:
    plan = make_study_plan(load_config("tiny"), "difficulty", pool_size=2_000)
    assert plan.device == "cpu" and all(s.gpus == 0 and s.cost_usd == 0 for s in plan.stages)
    assert len(rows(plan, "train[")) == 3 * 3  # three bins, ablate.repeats = 3
    assert [s.name for s in rows(plan, "ablate.")] == ["ablate.chains[strong]", "ablate.chains[strong_b]"]


def test_plan_ablate_prints_the_study_and_refuses_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--config", "limo-32b", "--ablate", "size", "--repeats", "2"]) == 0
    out = capsys.readouterr().out
    assert "3 arms x 2 repeat(s) = 6 trainings" in out and "train[n400-s43]" in out and "total" in out
    for argv, message in [
        (["--ablate", "sise"], f"unknown study 'sise': the studies are {', '.join(STUDIES)}"),
        (["--ablate", "size", "--repeats", "0"], "--repeats must be 1 or more, not 0"),
        (["--ablate", "size", "--simulate"], "--simulate places the run's stages"),
        (["--repeats", "2"], "--repeats is for --ablate STUDY"),
    ]:
        assert main(["plan", "--config", "limo-32b", *argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("limo: error: ") and message in err, (argv, err)
