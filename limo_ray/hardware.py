"""The GPUs the planner and the memory estimator know: memory and bf16 peak per GPU, in one table.

`cluster.gpu_type` is free text. Names are matched without regard to case. Memory needs the exact name (an
"A100" could have 40 or 80 GB); a name the table lacks but that states its size (``RTX-24GB``) is taken at
its word, else the memory is unknown and the plan says it did not check. Peak FLOP/s depend only on the chip,
so any name that starts with a known chip (``H100-SXM5``, ``A100-PCIE-40GB``) gets that chip's figure.

Not here: GPUs per node. That is the cluster's shape, stated in `cluster.gpus_per_node`, not a property of the
GPU (the same H100 comes in 1-, 4- and 8-GPU machines).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["GIB", "GPUS", "GpuSpec", "gpu_bf16_tflops", "gpu_memory_gib"]

# Every memory figure in the planner and the estimators is in GiB.
GIB = float(2**30)


@dataclass(frozen=True)
class GpuSpec:
    # Usable memory per GPU (GiB, as the driver reports it: nvidia-smi MiB / 1024). "80 GB" cards report ~80 GiB.
    memory_gib: float
    # Dense bf16 tensor-core peak (TFLOP/s), for the training throughput estimate.
    bf16_tflops: float


# Keyed by the names users write in `cluster.gpu_type`; the chip is the part before the first "-".
GPUS: dict[str, GpuSpec] = {
    "H100-80GB": GpuSpec(79.6, 989.0),
    "H100": GpuSpec(79.6, 989.0),
    "H800": GpuSpec(79.6, 989.0),
    "H200": GpuSpec(140.4, 989.0),
    "H200-141GB": GpuSpec(140.4, 989.0),
    "B200": GpuSpec(178.4, 2250.0),
    "A100-80GB": GpuSpec(80.0, 312.0),
    "A100-40GB": GpuSpec(40.0, 312.0),
    "L40S": GpuSpec(45.0, 362.0),
    "L4": GpuSpec(22.5, 121.0),
    "A10G": GpuSpec(22.5, 125.0),
}

_STATED_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*G[Ii]?B")


def _chip(name: str) -> str:
    return name.split("-", 1)[0].lower()


def gpu_memory_gib(gpu_type: str | None) -> float | None:
    """Memory of one GPU of this type, from the table, else from a `<n>GB` in the name; None if unknown."""
    if not gpu_type:
        return None
    for name, spec in GPUS.items():
        if name.lower() == gpu_type.lower():
            return spec.memory_gib
    match = _STATED_SIZE.search(gpu_type)
    return float(match.group(1)) if match else None


def gpu_bf16_tflops(gpu_type: str | None) -> float | None:
    """Dense bf16 peak of the chip `gpu_type` starts with (the longest known chip name); None if unknown."""
    key = (gpu_type or "").lower()
    chips = [(len(_chip(name)), spec) for name, spec in GPUS.items() if key.startswith(_chip(name))]
    return max(chips, key=lambda chip: chip[0])[1].bf16_tflops if chips else None
