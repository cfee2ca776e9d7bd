"""`limo ablate`: the LIMO paper's ablations on a run folder's curation — chain quality, problem difficulty, data
size, selection method and backbone — each arm trained and evaluated by `limo run`'s own code.

`arms` builds each study's arms (pure functions of the curation's files), `generate` runs the curation stages a
study needs beyond the curation's (reusing every attempt already drawn), `study` trains and evaluates the arms
(each skipped when complete), `summary` writes the study's tables, plot and the paper's finding beside ours.
"""

# The studies, in the order `limo ablate --help` lists them (kept here, light, for the CLI to import).
STUDIES: tuple[str, ...] = ("quality", "difficulty", "size", "selection", "backbone")
