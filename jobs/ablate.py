"""Ray job entry point for an ablation: `ray job submit --working-dir . -- python jobs/ablate.py STUDY --config X`.

Takes exactly the arguments of `limo ablate` (the study, then its options; see `limo ablate --help`).
"""

from _entry import run

if __name__ == "__main__":
    run("ablate")
