"""How the toy build splits its models into training lanes: roots first, branches where they finish earliest."""

from __future__ import annotations

import dataclasses

import pytest

from limo_ray.toy.lanes import assign_lanes, training_cost
from limo_ray.toy.spec import TOY_SPECS


@pytest.mark.parametrize("size", sorted(TOY_SPECS))
def test_every_lane_trains_its_roots_before_any_branch_and_every_model_once(size: str) -> None:
    spec = TOY_SPECS[size]
    lanes = assign_lanes(spec, 2)
    names = [m.name for lane in lanes for m in lane]
    assert sorted(names) == sorted(m.name for m in spec.model_specs())
    for lane in lanes:
        kinds = [m.branch_of is not None for m in lane]
        assert kinds == sorted(kinds)  # no root waits behind a branch, so no two lanes wait on each other


def test_a_branch_may_run_in_the_other_lane_and_the_lanes_end_close_together() -> None:
    spec = TOY_SPECS["full"]
    lanes = assign_lanes(spec, 2)
    parent_lane = next(i for i, lane in enumerate(lanes) if any(m.name == "strong" for m in lane))
    assert any(m.branch_of == "strong" for m in lanes[1 - parent_lane])
    loads = [sum(training_cost(m) for m in lane) for lane in lanes]
    assert max(loads) < 1.35 * min(loads)


def test_a_branch_must_continue_a_root_with_the_same_schedule() -> None:
    spec = TOY_SPECS["test"]
    longer = dataclasses.replace(spec.strong_b, steps=spec.strong.steps + 1)
    with pytest.raises(ValueError, match="steps must be its parent's"):
        assign_lanes(dataclasses.replace(spec, strong_b=longer), 2)
    nested = dataclasses.replace(spec.strong_b, branch_of="student", steps=spec.student.steps)
    bad = dataclasses.replace(
        spec,
        strong_b=nested,
        student=dataclasses.replace(spec.student, branch_of="strong", branch_at=0.5, steps=spec.strong.steps),
    )
    with pytest.raises(ValueError, match="not itself a branch"):
        assign_lanes(bad, 2)
