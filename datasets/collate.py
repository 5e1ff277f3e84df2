"""Batches of multi-modal samples: stacked per key, each modality at its own size.

A :class:`~geoalign.datasets.CubeIntersectionDataset` reads a whole batch at once through
PyTorch's ``__getitems__`` protocol, straight into the batch tensors (one copy of every byte, no
per-sample tensors to stack afterwards). It hands the DataLoader a :class:`SampleBatch`, which
:func:`collate_samples` returns as is. Any other collate function (PyTorch's default, torchgeo's
``stack_samples``) still works: a :class:`SampleBatch` is also a sequence of per-sample views.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, overload

import torch

from geoalign.errors import InvalidInputError


class SampleBatch(Sequence[dict[str, Any]]):
    """A batch already collated, that also reads as the list of its samples.

    Args:
        collated: Key -> tensor ``[B, ...]`` or list of ``B`` values.
        size: Number of samples ``B``.
    """

    def __init__(self, collated: dict[str, Any], size: int) -> None:
        self.collated = collated
        self.size = size

    def __len__(self) -> int:
        return self.size

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self.size))]
        if not -self.size <= index < self.size:
            raise IndexError(f"sample {index} of a batch of {self.size}")
        return {key: value[index] for key, value in self.collated.items()}

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for i in range(self.size):
            yield self[i]


def collate_samples(samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Stack samples into a batch: tensors ``[B, ...]`` per key, other values as lists.

    Use it as the DataLoader's ``collate_fn``. A :class:`SampleBatch` (read by the dataset in
    one go) is returned without copying.

    Raises:
        InvalidInputError: Samples disagree on their keys or on the shape of an entry.
    """
    if isinstance(samples, SampleBatch):
        return samples.collated
    if not samples:
        raise InvalidInputError("cannot collate an empty batch")
    keys = list(samples[0])
    out: dict[str, Any] = {}
    for key in keys:
        try:
            values = [sample[key] for sample in samples]
        except KeyError:
            raise InvalidInputError(
                f"samples of one batch have different keys ({key!r} is missing in some): draw "
                "them from one dataset"
            ) from None
        if isinstance(values[0], torch.Tensor):
            shapes = {tuple(v.shape) for v in values}
            if len(shapes) > 1:
                raise InvalidInputError(
                    f"entry {key!r} has different shapes in one batch {sorted(shapes)}: use "
                    "windows of one size, and TimeSelection('fixed', length=...) when the "
                    "number of dates differs between windows"
                )
            out[key] = torch.stack(values)
        else:
            out[key] = values
    return out
