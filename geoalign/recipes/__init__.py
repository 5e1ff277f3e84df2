"""Example recipes shipped with geoalign: real jobs against public STAC APIs.

    list_examples()                       # {"earth-search-sentinel2-landsat": "Sentinel-2 ..."}
    copy_example("earth-search-sentinel2-landsat", "my_recipe.yaml")

Each example is a complete recipe (see :mod:`geoalign.recipe`) whose only place-specific field
is ``aoi``: copy one out, change the AOI, and ``geoalign cube my_recipe.yaml`` builds a cube
from Earth Search or Planetary Computer. The command line: ``geoalign recipes [NAME]``.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from geoalign.errors import InvalidInputError, OutputExistsError

__all__ = ["copy_example", "example_text", "list_examples"]


def _files() -> dict[str, resources.abc.Traversable]:
    folder = resources.files(__name__)
    return {
        entry.name.removesuffix(".yaml"): entry
        for entry in folder.iterdir()
        if entry.name.endswith(".yaml")
    }


def list_examples() -> dict[str, str]:
    """Example name -> its description (the file's first comment paragraph), sorted by name."""
    out = {}
    for name, entry in sorted(_files().items()):
        words = []
        for line in entry.read_text(encoding="utf-8").splitlines():
            text = line.lstrip("#").strip()
            if not line.startswith("#") or not text:
                break  # the description is the first paragraph of comments
            words.append(text)
        out[name] = " ".join(words) or "(no description)"
    return out


def example_text(name: str) -> str:
    """The YAML text of an example recipe.

    Raises:
        InvalidInputError: No example has this name (the known names are listed).
    """
    files = _files()
    key = name.removesuffix(".yaml")
    if key not in files:
        raise InvalidInputError(
            f"no example recipe named {name!r}; the examples are: {', '.join(sorted(files))} "
            "(geoalign recipes lists them)"
        )
    return files[key].read_text(encoding="utf-8")


def copy_example(
    name: str, destination: str | os.PathLike[str], *, overwrite: bool = False
) -> Path:
    """Write an example recipe to ``destination`` (a file, or a folder to write NAME.yaml into).

    Raises:
        InvalidInputError: Unknown example.
        OutputExistsError: The file exists and ``overwrite`` is False.
    """
    text = example_text(name)
    out = Path(destination)
    if out.is_dir():
        out = out / f"{name.removesuffix('.yaml')}.yaml"
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out} exists: choose another --out, or pass --overwrite")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return out
