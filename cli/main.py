"""The ``geoalign`` command line.

Keep this module light: it is imported by ``geoalign --help``. Heavy libraries (torch, torchgeo,
lightning, and even xarray/odc) are imported inside the commands that need them.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from geoalign._version import __version__
from geoalign.errors import GeoAlignError

app = typer.Typer(
    name="geoalign",
    help="Aligned multi-sensor Earth-observation cubes from STAC, pretraining and embedding "
    "rasters.\n\nExit codes: 0 success, 1 unexpected failure, 2 bad input, 3 nothing found, "
    "130 interrupted. Add --debug for full tracebacks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # docstring lines are joined into paragraphs
)

_state = {"debug": False}

#: Exit codes of the command, documented in ``geoalign --help`` and the README.
EXIT_USER_ERROR = 2
EXIT_NO_DATA = 3
EXIT_INTERRUPTED = 130


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"geoalign {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version_callback,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
) -> None:
    """geoalign: from an area of interest to aligned cubes, encoders and embedding maps.

    Exit codes: 0 success, 1 unexpected failure, 2 bad input, 3 nothing found, 130 interrupted.
    """
    _state["debug"] = debug


def _register_commands() -> None:
    """Attach the sub-commands; each module imports its heavy dependencies lazily."""
    from geoalign.cli import (
        data_commands,
        demo_commands,
        embed_commands,
        evaluate_commands,
        train_commands,
    )

    demo_commands.register(app)
    data_commands.register(app)
    train_commands.register(app)
    evaluate_commands.register(app)
    embed_commands.register(app)


def main(argv: list[str] | None = None) -> int:
    """Run the command line and turn geoalign errors into short messages and exit codes.

    Args:
        argv: Arguments without the program name; ``sys.argv[1:]`` when None.

    Returns:
        The process exit code.
    """
    from geoalign.errors import NoDataFoundError

    _register_commands()
    try:
        # without standalone mode, click returns the code of a typer.Exit instead of raising it
        code = app(args=argv, prog_name="geoalign", standalone_mode=False)
    except GeoAlignError as error:
        if _state["debug"]:
            raise
        _print_error("error:", str(error))
        return EXIT_NO_DATA if isinstance(error, NoDataFoundError) else EXIT_USER_ERROR
    except typer.Exit as done:
        return int(done.exit_code)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except typer.Abort:
        return EXIT_INTERRUPTED
    except Exception as error:
        if _is_usage_error(error):  # a missing argument, an unknown option...: click shows it
            error.show()  # type: ignore[attr-defined]
            return int(error.exit_code)  # type: ignore[attr-defined]
        if _state["debug"]:
            raise
        _print_error(
            "unexpected error:",
            f"{type(error).__name__}: {error}\n"
            "Run again with --debug for the full traceback, and please report it.",
        )
        return 1
    return code if isinstance(code, int) else 0


def _print_error(label: str, message: str) -> None:
    """``label`` in bold red, then ``message`` as it is (never read as markup), on stderr."""
    from rich.text import Text

    from geoalign.cli.console import plain_console

    plain_console(stderr=True).print(Text.assemble((label, "bold red"), f" {message}"))


def _is_usage_error(error: Exception) -> bool:
    """Whether ``error`` is click's report of a bad command line (exit code 2, shown by click).

    Older typer releases raise click's own ``ClickException``; recent ones (0.29) raise the
    same class from the copy of click they ship, which derives from ``typer.TyperException``.
    """
    import click

    bases: tuple[type[Exception], ...] = (click.ClickException,)
    if hasattr(typer, "TyperException"):
        bases += (typer.TyperException,)
    return isinstance(error, bases) and callable(getattr(error, "show", None))


def entry_point() -> None:
    """Console-script entry point (``geoalign``)."""
    sys.exit(main())
