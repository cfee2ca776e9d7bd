"""The `limo` Typer app and `main`, its entry point: user errors become one line and exit status 2.

A traceback means a bug in limo-ray. The commands themselves live beside this module (`job`, `cluster`,
`standalone`) and register on `app` when `limo_ray.cli` is imported.
"""

from __future__ import annotations

import typer

from limo_ray.errors import LimoError

app = typer.Typer(
    name="limo",
    help=(
        "limo-ray: the LIMO recipe on Ray. Curate a few hundred hard problems with excellent reasoning chains "
        "from a large pool, fine-tune on them with DeepSpeed ZeRO-3, then serve and evaluate the checkpoint.\n\n"
        "Every command takes --config (a preset such as `tiny` or `limo-32b`, or a YAML file) and "
        "--set key.path=value overrides.\n\n"
        "Example: `limo run --config tiny --run-dir runs/demo` (the whole job on the toy world, what `make demo` "
        "runs); `limo COMMAND --help` shows each command with an example."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app, turning user errors into one line and exit status 2."""
    try:
        # Without standalone mode click returns a command's exit code (typer.Exit) instead of exiting.
        result = app(args=argv, prog_name="limo", standalone_mode=False)
    except LimoError as exc:
        typer.echo(f"limo: error: {exc}", err=True)
        return 2
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        typer.echo("limo: aborted", err=True)
        return 130
    except OSError as exc:
        import errno

        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        # Every output is written to a temporary name and renamed into place, and a stage is complete only once
        # its manifest is: what was finished stays valid, and the same command resumes after space is freed.
        where = f" writing {exc.filename}" if exc.filename else ""
        typer.echo(
            f"limo: error: no space left on the device{where}. Finished stages and stored samples are kept; "
            "free space (or pick another --run-dir) and run the same command again to resume.",
            err=True,
        )
        return 28
    except typer.TyperException as exc:  # a usage error (typo, missing argument): raised as standalone_mode is off
        show = getattr(exc, "show", None)
        if show is None:
            raise
        show()  # click's own usage error: the usage, the closest option, `Try 'limo ... --help'`
        return int(getattr(exc, "exit_code", 2))
    return result if isinstance(result, int) else 0
