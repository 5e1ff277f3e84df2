"""Cross-modal retrieval: a label-free measure of how well sensors agree on places.

For each location's embedding in modality A, rank the embeddings of every location in modality
B by cosine similarity: top-k is the fraction of locations whose own B embedding is among the
k nearest (chance: k / N). Computed for every ordered pair of modalities, in row blocks so
memory stays ``O(block * N)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric

from geoalign.errors import InvalidInputError


def retrieval_ranks(query: Tensor, gallery: Tensor, *, block: int = 1024) -> Tensor:
    """Rank (0 = nearest) of each query's own gallery entry among all gallery entries.

    Args:
        query: ``[N, D]`` embeddings of modality A (row i is location i).
        gallery: ``[N, D]`` embeddings of modality B, same location order.
        block: Query rows per similarity block.

    Returns:
        ``[N]`` int64: how many gallery entries are strictly more similar than the right one.
    """
    if query.shape != gallery.shape or query.ndim != 2:
        raise InvalidInputError(
            f"retrieval needs two [N, D] embeddings of the same locations, got "
            f"{tuple(query.shape)} and {tuple(gallery.shape)}"
        )
    q = F.normalize(query.float(), dim=-1)
    g = F.normalize(gallery.float(), dim=-1)
    ranks = []
    for start in range(0, q.shape[0], block):
        sims = q[start : start + block] @ g.T  # [b, N]
        rows = torch.arange(sims.shape[0], device=sims.device)
        own = sims[rows, rows + start][:, None]  # [b, 1] similarity to the right location
        ranks.append((sims > own).sum(dim=1))
    return torch.cat(ranks)


def cross_modal_retrieval(
    embeddings: Mapping[str, Tensor], ks: Sequence[int] = (1, 5)
) -> dict[str, float]:
    """Top-k cross-modal retrieval for every ordered pair of modalities.

    Args:
        embeddings: Modality -> ``[N, D]``, rows in the same location order.
        ks: The k of top-k.

    Returns:
        ``"top{k}/{a}_to_{b}"`` per pair, ``"top{k}"`` their mean, ``"chance_top{k}"`` (k / N)
        and ``"locations"`` (N).
    """
    names = list(embeddings)
    if len(names) < 2:
        raise InvalidInputError(f"retrieval needs two modalities, got {names}")
    n = int(embeddings[names[0]].shape[0])
    if n == 0:
        raise InvalidInputError("retrieval over zero locations")
    result: dict[str, float] = {}
    for k in ks:
        if k < 1:
            raise InvalidInputError(f"top-k needs k >= 1, got {k}")
    for a in names:
        for b in names:
            if a == b:
                continue
            ranks = retrieval_ranks(embeddings[a], embeddings[b])
            for k in ks:
                result[f"top{k}/{a}_to_{b}"] = float((ranks < k).float().mean())
    for k in ks:
        pairs = [v for key, v in result.items() if key.startswith(f"top{k}/")]
        result[f"top{k}"] = sum(pairs) / len(pairs)
        result[f"chance_top{k}"] = min(1.0, k / n)
    result["locations"] = float(n)
    return result


class CrossModalRetrieval(Metric):
    """Accumulates embeddings over a validation set (and over processes), then ranks them.

    Args:
        modalities: Names of the modalities (at least two).
        ks: The k of top-k.
    """

    full_state_update = False

    def __init__(self, modalities: Sequence[str], ks: Sequence[int] = (1, 5)) -> None:
        super().__init__()
        if len(modalities) < 2:
            raise InvalidInputError(f"retrieval needs two modalities, got {list(modalities)}")
        self.modalities = list(modalities)
        self.ks = tuple(ks)
        for name in self.modalities:
            self.add_state(f"emb_{name}", default=[], dist_reduce_fx="cat")

    def update(self, embeddings: Mapping[str, Tensor]) -> None:
        """Add a batch: modality -> ``[N, D]`` embeddings of the same ``N`` locations."""
        for name in self.modalities:
            getattr(self, f"emb_{name}").append(embeddings[name].detach().float())

    def compute(self) -> dict[str, float]:
        """Retrieval figures over everything added (see :func:`cross_modal_retrieval`)."""
        gathered = {}
        for name in self.modalities:
            state = getattr(self, f"emb_{name}")
            gathered[name] = torch.cat(state) if isinstance(state, list) else state
        return cross_modal_retrieval(gathered, self.ks)
