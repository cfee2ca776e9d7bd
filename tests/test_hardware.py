"""The one GPU table: memory needs the exact name (or a stated size), peak FLOP/s go by chip."""

from __future__ import annotations

import pytest

from limo_ray.hardware import GPUS, gpu_bf16_tflops, gpu_memory_gib


def test_gpu_memory_table_and_names() -> None:
    assert gpu_memory_gib("H100-80GB") == 79.6
    assert gpu_memory_gib("h200") == 140.4
    assert gpu_memory_gib("RTX-24GB") == 24.0
    assert gpu_memory_gib("mystery") is None and gpu_memory_gib(None) is None
    # A chip alone does not say how much memory: the A100 comes with 40 and 80 GB.
    assert gpu_memory_gib("A100") is None


@pytest.mark.parametrize(
    ("gpu_type", "tflops"),
    [
        ("H100-80GB", 989.0),
        ("h100-sxm5", 989.0),
        ("A100", 312.0),
        ("A100-SXM4-40GB", 312.0),
        ("L40S", 362.0),  # not the L4's figure, though "l40s" starts with "l4"
        ("L4", 121.0),
        ("A10G", 125.0),
        ("B200", 2250.0),
        ("mystery", None),
        (None, None),
    ],
)
def test_peak_flops_go_by_the_chip_the_name_starts_with(gpu_type: str | None, tflops: float | None) -> None:
    assert gpu_bf16_tflops(gpu_type) == tflops


def test_names_of_one_chip_agree_on_its_peak_flops() -> None:
    by_chip: dict[str, set[float]] = {}
    for name, spec in GPUS.items():
        by_chip.setdefault(name.split("-")[0], set()).add(spec.bf16_tflops)
    assert all(len(peaks) == 1 for peaks in by_chip.values()), by_chip
