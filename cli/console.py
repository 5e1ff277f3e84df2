"""The rich console every command prints with: strings print as they are, never as markup."""

from __future__ import annotations

from rich.console import Console


def plain_console(*, stderr: bool = False) -> Console:
    """A console that prints strings literally.

    rich would read ``[minx, miny, maxx, maxy]`` in an error, ``geoalign[demo]`` in an
    install hint or a bracket in a path as markup and drop it; styled words are built with
    ``rich.text.Text`` instead. On stderr, long messages are not wrapped (soft wrap), so they
    stay greppable.
    """
    return Console(stderr=stderr, soft_wrap=stderr, markup=False)
