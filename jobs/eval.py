"""Ray job entry point: `ray job submit --working-dir . -- python jobs/eval.py --config limo-32b ...`.

Takes exactly the options of `limo eval` (see `limo eval --help`).
"""

from _entry import run

if __name__ == "__main__":
    run("eval")
