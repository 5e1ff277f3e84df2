"""Validation errors of YAML files (recipes, pretraining and evaluation configs) a user can act on.

Each problem is one line: the field path, its line in the file (when the text is known), pydantic's
message, and for a misspelt field the known names closest to it (``batchsize`` -> ``batch_size``).
"""

from __future__ import annotations

import difflib
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from geoalign.errors import InvalidInputError


def invalid(
    what: str, error: ValidationError, model: type[BaseModel], source: Path | None = None
) -> InvalidInputError:
    """The error to raise for a ``what`` (e.g. "recipe") that failed validation as ``model``.

    Args:
        what: What was validated, for the message.
        error: Pydantic's error.
        model: The model validated (its field names are the suggestions for misspelt ones).
        source: The YAML file the values came from: problems then carry its line numbers.
    """
    text = source.read_text() if source is not None and source.is_file() else None
    where = f" {source}" if source is not None else ""
    return InvalidInputError(f"invalid {what}{where}:\n{describe(error, model, text)}")


def describe(error: ValidationError, model: type[BaseModel], text: str | None = None) -> str:
    """Every problem of ``error`` (raised validating ``model``), one indented line each."""
    names = sorted(field_names(model))
    lines = []
    for problem in error.errors():
        location = tuple(problem["loc"])
        where = ".".join(str(part) for part in location) or "(top level)"
        line = None if text is None else line_of(text, location)
        at = f" (line {line})" if line else ""
        message = problem["msg"]
        if problem["type"] == "extra_forbidden" and location:
            close = difflib.get_close_matches(str(location[-1]), names, n=3, cutoff=0.6)
            if close:
                message += f": did you mean {' or '.join(repr(name) for name in close)}?"
        lines.append(f"  {where}{at}: {message}")
    return "\n".join(lines)


def field_names(model: type[BaseModel]) -> set[str]:
    """The names of every field of ``model`` and of the models its fields hold, at any depth."""
    names: set[str] = set()
    seen: set[type[BaseModel]] = set()

    def visit(kind: Any) -> None:
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            if kind in seen:
                return
            seen.add(kind)
            for name, info in kind.model_fields.items():
                names.add(info.alias or name)
                visit(info.annotation)
        for argument in typing.get_args(kind):
            visit(argument)

    visit(model)
    return names


def line_of(text: str, location: tuple[Any, ...]) -> int | None:
    """Best-effort line number of a field path in YAML text.

    Path parts that are not keys of the YAML (pydantic's tags of tagged unions) are passed over;
    a field that is missing points at the mapping that should hold it.
    """
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    for key in location:
        if node is None:
            return None
        if isinstance(node, yaml.MappingNode):
            match = [value for k, value in node.value if k.value == str(key)]
            if match:
                node = match[0]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            break
    return None if node is None else node.start_mark.line + 1
