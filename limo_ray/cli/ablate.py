"""`limo ablate STUDY`: one of the LIMO paper's ablations on a run folder's curation (limo_ray/ablate/)."""

from __future__ import annotations

from typing import Annotated

import typer

from limo_ray.ablate import STUDIES
from limo_ray.cli.app import app
from limo_ray.cli.options import (
    ConfigOption,
    RunDirOption,
    SetOption,
    VerboseOption,
    load,
    resolve_entry,
    run_folder,
    step_console,
)


@app.command("ablate")
def ablate_command(
    study: Annotated[str, typer.Argument(help=f"The study: {', '.join(STUDIES)}.", show_default=False)],
    config: ConfigOption = "tiny",
    overrides: SetOption = None,
    run_dir: RunDirOption = None,
    repeats: Annotated[
        int | None,
        typer.Option(help="Repeats, each with its own seed for the arms' draws and training [ablate.repeats]."),
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Stop after `arms` (their dataset files) or `train` (every arm trained).")
    ] = None,
    verbose: VerboseOption = False,
) -> None:
    """Ablate the recipe on the run folder's curation: arms built from it, each trained and evaluated as
    `limo run` does, compared with the study's reference arm.

    quality: the same problems with chains at levels L1..L5; difficulty: equal-size bins of the decontaminated
    pool; size: nested subsets of the curated set; selection: curated vs random vs weak-filter-only vs
    strong-band-only; backbone: the curated set on each of ablate.backbone.students. Writes RUN_DIR/ablate/STUDY/
    (the arms' datasets, their runs, eval/, summary.md with each run's 95% CI, the repeats' mean and spread, a
    paired test against the reference arm and the paper's finding, accuracy.png). Curates first if the run
    folder has no finished curation; generates nothing twice; a re-run skips every finished arm.

    Example: `limo ablate quality --config tiny --run-dir runs/demo --repeats 3` (after `limo run --config tiny
    --run-dir runs/demo`)
    """
    from limo_ray.ablate.study import check_study, check_until, run_study

    check_study(study)
    check_until(until)
    resolved = resolve_entry(load(config, overrides))
    folder = run_folder(resolved, run_dir)
    with step_console(folder, resolved.cluster, verbose) as console:
        result = run_study(resolved, folder, study, repeats=repeats, until=until, log=console)
        console.note(f"arms: {len(result.arms)} datasets in {result.folder / 'arms'}")
        if result.summary is not None:
            text = result.summary.read_text(encoding="utf-8")
            console.note(text.split("![", 1)[0].rstrip())
            console.note(f"summary: {result.summary}")
