"""The demo's output folder: never someone else's, never looking finished while it is not.

It is refused when it holds anything but an earlier demo. A folder the demo writes holds
``.geoalign-demo``: ``running`` until the last step ends, then ``complete``. ``--overwrite``
replaces only folders with that marker; anything else is left alone, whatever the flag says.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from geoalign.errors import InvalidInputError, OutputExistsError

MARKER = ".geoalign-demo"


def check_folder(folder: Path, *, overwrite: bool) -> bool:
    """Whether ``folder`` holds an earlier demo to replace; raise if it may not be used.

    Raises:
        OutputExistsError: The folder is not empty and ``overwrite`` is False.
        InvalidInputError: The path is a file, or a non-empty folder the demo did not write.
    """
    folder = folder.expanduser()
    if folder.exists() and not folder.is_dir():
        raise InvalidInputError(f"--out {folder} is a file: give a folder")
    if folder.is_dir() and any(folder.iterdir()):
        if not overwrite:
            raise OutputExistsError(
                f"{folder} exists and is not empty: pass --overwrite to replace an earlier demo "
                "there, or choose another --out"
            )
        if not (folder / MARKER).is_file():
            raise InvalidInputError(
                f"{folder} is not a folder geoalign demo wrote (no {MARKER} file), so "
                "--overwrite will not delete it: choose another --out"
            )
        return True
    return False


def prepare_folder(folder: Path, *, overwrite: bool) -> Path:
    """Create ``folder`` for a new demo run (replacing an earlier demo when ``overwrite``).

    Raises:
        OutputExistsError, InvalidInputError: See :func:`check_folder`.
    """
    folder = folder.expanduser()
    if check_folder(folder, overwrite=overwrite):
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER).write_text("running\n")
    return folder.resolve()


def mark_complete(folder: Path) -> None:
    """Mark a demo folder finished (the last thing the demo does)."""
    (folder / MARKER).write_text("complete\n")
