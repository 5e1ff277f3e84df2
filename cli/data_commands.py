"""Data-layer commands: ``search``, ``cube``, ``info``. Filled in by the data-layer issue."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Attach the data-layer commands to ``app``."""
    del app
