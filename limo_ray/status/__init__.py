"""`limo status RUN_DIR`: where a run stands, read from its files alone, never from Ray.

`status/read.py` reads the run folder into a `RunStatus` (steps done/running/stopped/pending, the stages, training
and eval progress); `status/holder.py` says who holds the folder's lock and whether that process is alive;
`status/render.py` writes what `limo status` prints.
"""

from limo_ray.status.holder import Holder, last_write, read_holder
from limo_ray.status.read import (
    RUN_STEPS,
    SUMMARY_FILE,
    EvalProgress,
    RunStatus,
    RunStep,
    StageRow,
    StepStatus,
    TrainProgress,
    read_status,
)
from limo_ray.status.render import format_status

__all__ = [
    "RUN_STEPS",
    "SUMMARY_FILE",
    "EvalProgress",
    "Holder",
    "RunStatus",
    "RunStep",
    "StageRow",
    "StepStatus",
    "TrainProgress",
    "format_status",
    "last_write",
    "read_holder",
    "read_status",
]
