"""What a `limo` job shows on the console: a live display on a terminal, plain lines elsewhere, Ray's output in files.

`console/display.py` decides what each logged line does (progress on the display, or a line that stays) and
records every line in `<run>/logs/limo.log`; `console/job.py` sets up one command's console around it (the
driver's and Ray's output into `<run>/logs/`, the header) and says what `limo submit` prints.
"""

from limo_ray.console.display import PLAIN_EVERY_S, JobConsole, Line, Progress, classify
from limo_ray.console.job import (
    CONSOLE_LOG,
    DRIVER_LOG,
    GRAFANA_DASHBOARD,
    LOGS_DIR,
    RAY_LOGS,
    grafana_line,
    job_console,
    submit_lines,
    summary_sections,
)

__all__ = [
    "CONSOLE_LOG",
    "DRIVER_LOG",
    "GRAFANA_DASHBOARD",
    "LOGS_DIR",
    "PLAIN_EVERY_S",
    "RAY_LOGS",
    "JobConsole",
    "Line",
    "Progress",
    "classify",
    "grafana_line",
    "job_console",
    "submit_lines",
    "summary_sections",
]
