"""How every ``hotline`` command stops on a user's mistake: one line on stderr saying what to fix, exit != 0."""
from __future__ import annotations

import typer


def fail(message: str, code: int = 1) -> None:
    """One line on stderr saying what to fix, then a non-zero exit."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)
