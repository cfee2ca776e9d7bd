"""`limo plan`: the numbers follow from the config and the stated assumptions, impossible plans are refused,
and the tiny preset plans for CPU."""

from __future__ import annotations

import dataclasses

import pytest

from limo_ray.config import load_config
from limo_ray.errors import LimoError
from limo_ray.plan import DEFAULT_POOL_SIZE, Assumptions, format_plan, make_plan


@pytest.fixture(scope="module")
def paper_plan():
    return make_plan(load_config("limo-32b"))


def test_filter_tokens_follow_the_assumptions() -> None:
    a = Assumptions(strong_early_stop=0.0)
    plan = make_plan(load_config("limo-32b"), a, pool_size=100_000)
    clean = round(round(100_000 * a.dedup_survival) * a.decontamination_survival)
    weak = plan.stage("curate.weak")
    assert weak.problems_in == clean == 69_300
    # Round 1: every problem, 1 attempt; round 2: the unsolved, 3 attempts.
    assert weak.generations == round(clean * (1 + a.weak_unsolved_after_first_round * 3))
    assert weak.tokens == weak.generations * a.weak_response_tokens
    strong = plan.stage("curate.strong")
    surviving = round(clean * a.weak_survival)
    assert strong.problems_in == weak.problems_out == surviving
    # No early stopping: surviving problems x samples x expected length.
    assert strong.tokens == surviving * 32 * a.strong_response_tokens
    assert strong.problems_out == round(surviving * a.strong_survival)


def test_early_stopping_and_length_caps() -> None:
    a = Assumptions(strong_early_stop=0.5, strong_response_tokens=50_000, response_tokens={"r1": 7_000})
    plan = make_plan(load_config("limo-32b"), a)
    strong = plan.stage("curate.strong")
    # Half stop after the first round of 8; responses never exceed the stage's max_tokens (32,768).
    assert strong.generations == round(strong.problems_in * (0.5 * 8 + 0.5 * 32))
    assert strong.tokens == strong.generations * 32_768
    r1 = plan.stage("curate.chains[r1]")
    assert r1.tokens == r1.problems_in * 4 * 7_000


def test_paper_plan_gpus_actors_and_cost(paper_plan) -> None:
    plan = paper_plan
    assert plan.device == "cuda" and plan.total_gpus == 16 and plan.pool_size == DEFAULT_POOL_SIZE
    engines = {e.name: e for e in plan.engines}
    assert (engines["weak"].world_size, engines["weak"].replicas) == (1, 16)
    assert (engines["strong"].world_size, engines["strong"].replicas) == (4, 4)
    assert len(engines["strong"].bundles) == 4 and engines["strong"].bundles[0] == {"GPU": 1.0, "CPU": 1.0}
    assert (engines["r1"].world_size, engines["r1"].replicas) == (16, 1)
    assert plan.stage("curate.strong").actors == 4 and plan.stage("curate.strong").gpus == 16
    train = plan.stage("train")
    assert train.gpus == 16 and train.actors == 16
    assert train.problems_in == 817
    assert train.tokens == 817 * 15 * (200 + 10_000)
    # Decode time = tokens / (per-GPU rate x GPUs); a 32B model is "medium".
    strong = plan.stage("curate.strong")
    assert strong.wall_s == pytest.approx(strong.tokens / (1000.0 * 16))
    assert strong.gpu_hours == pytest.approx(strong.wall_s / 3600 * 16)
    assert plan.cost_usd == pytest.approx(plan.gpu_hours * 2.5)
    eval_stage = plan.stage("eval")
    # The paper's ten benchmarks: 2,233 items; AIME24, AMC23 and CHMath sampled 4 times; two checkpoints.
    assert eval_stage.problems_in == 2_233
    assert eval_stage.generations == 2 * (2_233 + 3 * (30 + 40 + 30))
    assert plan.train_memory is not None and plan.train_memory.fits(79.6).ok


def test_format_plan_prints_stages_memory_and_assumptions(paper_plan) -> None:
    text = format_plan(paper_plan)
    for expected in (
        "2 node(s) x 8 GPU(s) = 16 H100-80GB",
        "curate.strong",
        "curate.chains[r1]",
        "TP 4 x PP 1",
        "1 x {GPU: 1, CPU: 1} + 3 x {GPU: 1}",
        "ZeRO-3",
        ": fits",
        "strong_survival=0.1",
        "train_loss=fused",
        "other losses: chunked 94.6 GiB, hf 92.0 GiB",
        "total",
    ):
        assert expected in text, expected


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["cluster.num_nodes=1"],
            r"tensor_parallel_size x pipeline_parallel_size = 8 x 2 = 16 GPUs.*1 node\(s\) x 8 GPUs = 8",
        ),
        (["cluster.gpu_type=L4", "models.strong.tensor_parallel_size=1"], r"'strong'.*does not fit TP 1 x PP 1"),
        (["train.num_workers=8"], r"does not fit: .*ZeRO-3, 8 GPU\(s\).*> 79.6 GiB"),
        (["train.attention=eager"], r"does not fit: .*eager"),
        (
            ["cluster.num_nodes=3", "train.num_workers=32", "train.global_batch_size=32"],
            r"train.num_workers = 32 .* 3 x 8 = 24",
        ),
    ],
)
def test_impossible_plans_are_refused(overrides: list[str], message: str) -> None:
    with pytest.raises(LimoError, match=message):
        make_plan(load_config("limo-32b", overrides))


def test_one_gpu_training_is_refused_with_the_numbers() -> None:
    # One node of 8 (so drop R1, which needs 16) and a single training worker.
    overrides = ["cluster.num_nodes=1", "train.num_workers=1", "curate.chains.models=[strong, qwq]"]
    with pytest.raises(LimoError) as info:
        make_plan(load_config("limo-32b", overrides))
    message = str(info.value)
    assert message.startswith("does not fit: Qwen/Qwen2.5-32B-Instruct (32.76B params), ZeRO-3, 1 GPU(s)")
    for number in ("model states 552.1", "> 79.6 GiB per GPU", "try 16 GPUs of this size"):
        assert number in message


def test_tiny_preset_plans_for_cpu() -> None:
    plan = make_plan(load_config("tiny"), pool_size=2_000)
    assert plan.device == "cpu" and plan.total_gpus == 0
    assert all(s.gpus == 0 and s.gpu_hours == 0 and s.cost_usd == 0 for s in plan.stages)
    assert all(e.bundles == ({"CPU": 1.0},) and e.replicas == 1 for e in plan.engines)
    assert plan.train_memory is None
    assert plan.stage("train").actors == 2
    # Responses are capped by the preset's max_tokens (200).
    weak = plan.stage("curate.weak")
    assert weak.tokens == weak.generations * 200
    text = format_plan(plan)
    assert "CPU only (0 GPUs)" in text and "benchmark 'toy'" in text


def test_unknown_gpu_type_is_noted_not_refused() -> None:
    plan = make_plan(load_config("limo-32b", ["cluster.gpu_type=mystery"]))
    assert plan.gpu_memory_gib is None
    assert any("GPU memory unknown" in n for n in plan.notes)


def test_assumptions_are_checked() -> None:
    with pytest.raises(LimoError, match="weak_survival"):
        Assumptions(weak_survival=1.5)
    with pytest.raises(LimoError, match="cannot exceed"):
        Assumptions(weak_survival=0.5, weak_unsolved_after_first_round=0.3)
    assert dataclasses.asdict(Assumptions())["strong_survival"] == 0.1
