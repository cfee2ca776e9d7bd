"""`limo`: the command line of limo-ray.

User errors (a bad config key, a missing file, a malformed input) print one line, `limo: error: ...`, and
exit with status 2; a traceback means a bug in limo-ray.

`app` and `main` live in `cli/app.py`; importing this package registers every command on `app`: the job's
(`cli/job.py`: curate, train, serve, eval, run, status), the ablations (`cli/ablate.py`), the cluster's
(`cli/cluster.py`: plan, submit) and those that stand apart from a run (`cli/standalone.py`: grade, config,
benchmarks, toy). `limo --help` lists them in that order.
"""

# Each module registers its commands on `app` as it is imported, and `limo --help` lists them in that order.
from limo_ray.cli import job  # noqa: F401

# isort: split
from limo_ray.cli import ablate  # noqa: F401

# isort: split
from limo_ray.cli import cluster, standalone  # noqa: F401
from limo_ray.cli.app import app, main

__all__ = ["app", "main"]
