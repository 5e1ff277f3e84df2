"""Run the installed ``geoalign`` command as a user does: a subprocess in a wide terminal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_geoalign(
    *args: str, cwd: Path | None = None, answer: str | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run ``geoalign ARGS`` (the venv's console script); ``answer`` is typed at its prompt.

    Without ``answer`` stdin is closed, as in a script or CI job (prompts then fail clearly).
    """
    command = [str(Path(sys.executable).with_name("geoalign")), *args]
    return subprocess.run(
        command,
        input=answer,
        stdin=None if answer is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200"},
        timeout=timeout,
    )
