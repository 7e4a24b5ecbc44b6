"""What every command shares: consoles, logging set-up, the --device option and progress bars.

stdout carries results (tables or --json); stderr carries logs and progress.
"""

from __future__ import annotations

import json
import logging
from contextlib import contextmanager
from enum import Enum
from typing import Any

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

stdout = Console(soft_wrap=True)
stderr = Console(stderr=True)

state = {"verbose": False, "quiet": False}


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    gpu = "gpu"


def setup_logging(verbose: bool, quiet: bool) -> None:
    state.update(verbose=verbose, quiet=quiet)
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    handler = RichHandler(console=stderr, show_time=verbose, show_path=verbose, markup=False,
                          rich_tracebacks=True)
    root = logging.getLogger("gpumaja")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def print_json(data: Any) -> None:
    """Results as JSON on stdout (plain print: no wrapping, no colour codes)."""
    print(json.dumps(data, indent=2, default=str))


@contextmanager
def progress_bar(description: str, total: int | None):
    """A rich progress bar on stderr (hidden with -q); yields advance(n=1, description=None, total=None)
    (`total` changes the bar's length, e.g. once a series' plan is known)."""
    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=stderr,
        transient=False,
        disable=state["quiet"],
    )
    with progress:
        task = progress.add_task(description, total=total)

        def advance(n: int = 1, description: str | None = None, total: int | None = None) -> None:
            if description is not None:
                progress.update(task, description=description)
            if total is not None:
                progress.update(task, total=total)
            progress.advance(task, n)

        yield advance
