"""Ray job entry point for the whole job: `ray job submit --working-dir . -- python jobs/pipeline.py --config X`.

Takes exactly the options of `limo run` (curate -> train -> eval in one run folder).
"""

from _entry import run

if __name__ == "__main__":
    run("run")
