"""A toy build's progress: plain lines off a terminal (a log file, CI), a bar on one, nothing when quiet."""

from __future__ import annotations

import io

from limo_ray.toy.progress import NoProgress, PlainProgress, build_progress


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_progress_prints_a_new_line_at_most_every_interval_and_one_at_the_end() -> None:
    out, clock = io.StringIO(), Clock()
    progress = PlainProgress(100, "toy world (test)", out, every_s=30.0, clock=clock)
    for step in range(100):
        clock.now = step  # one second per step: lines at 0 s, 30 s, 60 s, 90 s
        progress.set_postfix_str(f"weak {5 - step / 25:.2f}")
        progress.update()
    clock.now = 100.0
    progress.close()
    progress.close()  # a second close (a `finally` after an error path) adds nothing
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert lines[0] == "toy world (test): 1/100 steps (1%), 0 s, weak 5.00"
    assert [line.split(":")[1].split(",")[0].strip() for line in lines] == [
        "1/100 steps (1%)",
        "31/100 steps (31%)",
        "61/100 steps (61%)",
        "91/100 steps (91%)",
        "100/100 steps (100%)",
    ]
    assert lines[-1].endswith("100 s, weak 1.04")


def test_build_progress_picks_plain_lines_off_a_terminal_a_bar_on_one_and_nothing_when_quiet() -> None:
    assert isinstance(build_progress(10, True, "toy", io.StringIO()), PlainProgress)
    assert isinstance(build_progress(10, False, "toy", io.StringIO()), NoProgress)
    terminal = Terminal()
    bar = build_progress(10, True, "toy", terminal)
    bar.update(10)
    bar.close()
    assert "10/10" in terminal.getvalue() and "\r" in terminal.getvalue()  # a bar redraws in place
