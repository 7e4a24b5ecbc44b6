"""The `gpumaja` command: one typer app, one module per command.

Exit codes: 0 ok, 1 processing failure, 2 bad usage or bad input (the message names the file and what
was wrong; the traceback is shown only with -v).
"""

from __future__ import annotations

import logging
import sys

import typer
from rich.markup import escape

from gpumaja import __version__
from gpumaja.cli import batch, demo, info, l2a, l3a, lut, scd, snow, synth
from gpumaja.cli.common import setup_logging, state, stderr
from gpumaja.errors import GpumajaError

app = typer.Typer(
    name="gpumaja",
    help="MAJA / WASP / Let-It-Snow science for Sentinel-2 and Landsat, on the GPU or the CPU.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        print(f"gpumaja {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logs and tracebacks on stderr."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and errors on stderr; no progress."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    setup_logging(verbose, quiet)


app.command("info")(info.info)
app.command("synth")(synth.synth)
app.command("l2a")(l2a.l2a)
app.command("batch")(batch.batch)
app.command("l3a")(l3a.l3a)
app.command("snow")(snow.snow)
app.command("scd")(scd.scd)
app.command("demo")(demo.demo)
app.add_typer(lut.app, name="lut")


def _cli_exit(exc: Exception) -> int:
    """Exit code for an exception that is not a GpumajaError.

    Click's usage errors and exits are recognised by class name: typer >= 0.20 raises its vendored
    copy of click's exceptions (typer._click), older typer raises click's own.
    """
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "Exit" in names:
        return int(getattr(exc, "exit_code", 0) or 0)
    if "ClickException" in names:
        exc.show()  # type: ignore[attr-defined]
        return 2 if "UsageError" in names else int(getattr(exc, "exit_code", 1))
    if "Abort" in names:
        stderr.print("aborted")
        return 130
    # a bug or an unexpected failure: exit 1
    logging.getLogger("gpumaja").debug("unexpected error", exc_info=True)
    if state["verbose"]:
        stderr.print_exception()
    stderr.print(f"[bold red]failed:[/] {type(exc).__name__}: {escape(str(exc))} (run with -v for the traceback)",
                 markup=True, highlight=False)
    return 1


def run(argv: list[str] | None = None) -> int:
    """Entry point: runs the app and turns errors into messages and exit codes."""
    try:
        result = app(args=argv, prog_name="gpumaja", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except GpumajaError as exc:
        if state["verbose"]:
            stderr.print_exception()
        stderr.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True, highlight=False)
        code = exc.exit_code
    except Exception as exc:
        code = _cli_exit(exc)
    except KeyboardInterrupt:
        stderr.print("interrupted")
        code = 130
    if argv is None:
        sys.exit(code)
    return code


if __name__ == "__main__":  # pragma: no cover
    run()
