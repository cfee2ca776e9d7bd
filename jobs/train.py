"""Ray job entry point: `ray job submit --working-dir . -- python jobs/train.py --config limo-32b ...`.

Takes exactly the options of `limo train` (see `limo train --help`).
"""

from _entry import run

if __name__ == "__main__":
    run("train")
