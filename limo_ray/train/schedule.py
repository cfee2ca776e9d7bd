"""Learning-rate schedules as a multiplier of the peak lr: linear warm-up, then cosine / linear / constant.

The warm-up is `ceil(warmup_ratio * total_steps)` steps and starts at lr/warmup, not 0: a step taken at lr 0 is
a step wasted. With no warm-up (the paper) the first step runs at the peak lr. The cosine decays to 0 at the end.
"""

from __future__ import annotations

import math
from collections.abc import Callable


def warmup_steps(total_steps: int, warmup_ratio: float) -> int:
    return math.ceil(warmup_ratio * total_steps)


def lr_multiplier(kind: str, total_steps: int, warmup_ratio: float) -> Callable[[int], float]:
    """step (0-based, the step about to run) -> factor of the peak lr."""
    warmup = warmup_steps(total_steps, warmup_ratio)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if kind == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total_steps - warmup)
        if kind == "linear":
            return max(0.0, 1.0 - progress)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor
