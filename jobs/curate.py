"""Ray job entry point: `ray job submit --working-dir . -- python jobs/curate.py --config limo-32b ...`.

Takes exactly the options of `limo curate` (see `limo curate --help`).
"""

from _entry import run

if __name__ == "__main__":
    run("curate")
