"""Contrastive losses where location is the supervision: multi-positive InfoNCE and pairwise CLIP.

    loss = MultiPositiveInfoNCE(temperature=0.1)
    out = loss({"s2": z_s2, "s1": z_s1, "naip": z_naip})    # each [N, D] or [N, T, D]
    out.loss.backward()

Every view of a batch (M modalities x T augmented views x N locations) is an anchor; its
positives are the other views of the same location (the other modalities and, with artificial
augmentations, its augmented copies); every other view of the batch is a negative. Following
Berg, Pham and Courty, "Joint multi-modal self-supervised pre-training in remote sensing:
application to methane source classification" (IGARSS 2023, arXiv:2306.09851), itself the
multi-positive form of SupCon (Khosla et al. 2020, arXiv:2004.11362, eq. 2 "L_out"):

    L(i) = - 1/|P(i)| sum_{p in P(i)} log( exp(s_ip / tau) / sum_{a != i} exp(s_ia / tau) )

with ``s`` the cosine similarity. It is computed as a masked log-softmax over ONE
``[V_anchor, V]`` similarity matrix (``V = M * T * N``): no loop over pairs or subsets of
sensors, encoder cost linear in ``M``. The log-softmax form (``logits - logsumexp``) is the
numerically stable way to write the ratio of exponentials (no overflow for small ``tau``), and
averaging over positives (instead of the paper's sum) only divides the loss by the constant
``M * T - 1``, so the loss reads the same whatever the number of sensors.

Samples flagged ``negatives_only`` (a class that only ever serves as negatives, as the
"negative" class of Meter-ML) are never anchors; their views stay in every denominator.
Under DDP pass the embeddings of the *global* batch and ``anchors`` (this process's
locations): each process computes the rows of its own anchors against every view.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geoalign.errors import InvalidInputError

#: Upper bound of the learnable logit scale ``1 / tau`` (as in CLIP): tau never drops below 0.01.
MAX_LOGIT_SCALE = 100.0


class ContrastiveOutput(NamedTuple):
    """What a contrastive loss returns: the total and its parts (scalars, for logging).

    Attributes:
        loss: Total loss (contrastive + intra_modal_weight * intra_modal).
        contrastive: The cross-view term (multi-positive or pairwise).
        intra_modal: The intra-modal term (0 when disabled).
        positive_similarity: Mean cosine similarity of anchor/positive pairs (no gradient).
        negative_similarity: Mean cosine similarity of anchor/negative pairs (no gradient).
    """

    loss: Tensor
    contrastive: Tensor
    intra_modal: Tensor
    positive_similarity: Tensor
    negative_similarity: Tensor


def stack_views(embeddings: Mapping[str, Tensor] | Tensor) -> Tensor:
    """Stack per-modality embeddings into one ``[M, T, N, D]`` tensor.

    Args:
        embeddings: Modality -> ``[N, D]`` (one view) or ``[N, T, D]`` (``T`` views), or an
            already stacked ``[M, T, N, D]`` tensor.

    Raises:
        InvalidInputError: No modality, or modalities disagreeing on ``N``, ``T`` or ``D``.
    """
    if isinstance(embeddings, Tensor):
        if embeddings.ndim != 4:
            raise InvalidInputError(
                f"stacked embeddings must be [M, T, N, D], got shape {tuple(embeddings.shape)}"
            )
        return embeddings
    if not embeddings:
        raise InvalidInputError("no embeddings: pass at least one modality")
    views = []
    for name, z in embeddings.items():
        if z.ndim not in (2, 3):
            raise InvalidInputError(
                f"embeddings of {name!r} have shape {tuple(z.shape)}: expected [N, D] or [N, T, D]"
            )
        views.append((z if z.ndim == 3 else z.unsqueeze(1)).transpose(0, 1))  # [T, N, D]
    shapes = {tuple(v.shape) for v in views}
    if len(shapes) > 1:
        described = {name: tuple(z.shape) for name, z in embeddings.items()}
        raise InvalidInputError(
            f"modalities disagree on [N, (T,) D]: {described}; give every modality the same "
            "locations, number of views and embedding size"
        )
    return torch.stack(views)


def _at_least_float32(x: Tensor) -> Tensor:
    """Half precision embeddings are upcast; float32/float64 stay as they are."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _anchor_index(anchors: slice | Tensor | None, n: int, device: torch.device) -> Tensor:
    """Indexes ``[Na]`` of the anchor locations among the ``n`` locations."""
    if anchors is None:
        return torch.arange(n, device=device)
    if isinstance(anchors, slice):
        return torch.arange(n, device=device)[anchors]
    return anchors.to(device=device, dtype=torch.long)


class _Batch(NamedTuple):
    """The one similarity tensor of a batch and what the losses need to read it."""

    logits: Tensor  # [S * Na, S * N]: scaled cosine of anchor (stream a, location i) and (b, j)
    shape: tuple[int, int, int, int]  # (S, Na, S, N)
    scale: Tensor | float  # the logit scale 1 / tau
    locations: Tensor  # [Na] the anchors' locations among the N
    keep: Tensor  # [Na] bool: anchors that count (not negatives-only)


def _batch(
    views: Tensor,
    logit_scale: Tensor | float,
    negatives_only: Tensor | None,
    anchors: slice | Tensor | None,
) -> _Batch:
    m, t, n, d = views.shape
    s = m * t
    z = F.normalize(_at_least_float32(views), dim=-1).reshape(s, n, d)  # [S, N, D]
    index = _anchor_index(anchors, n, z.device)  # [Na]
    na = int(index.numel())
    # ONE matrix product for every view of every sensor: [S * Na, D] x [D, S * N]; the scale
    # multiplies the (small) anchor embeddings rather than the (large) product
    scaled = z[:, index].reshape(s * na, d) * logit_scale
    logits = scaled @ z.reshape(s * n, d).T  # [S * Na, S * N]; view as [S, Na, S, N]
    keep = torch.ones(na, dtype=torch.bool, device=z.device)
    if negatives_only is not None:
        if negatives_only.shape != (n,):
            raise InvalidInputError(
                f"negatives_only has shape {tuple(negatives_only.shape)}: give one flag per "
                f"location, shape ({n},)"
            )
        keep = ~negatives_only.to(z.device, torch.bool)[index]
    return _Batch(logits, (s, na, s, n), logit_scale, index, keep)


def _at_own_location(values: Tensor, index: Tensor) -> Tensor:
    """``values[a, i, b, index[i]]``: ``[S, Na, S, N]`` -> ``[S, Na, S]`` (the positives)."""
    s, na = values.shape[0], values.shape[1]
    picks = index.view(1, na, 1, 1).expand(s, na, s, 1)
    return values.gather(3, picks).squeeze(3)


def _without_self(batch: _Batch) -> Tensor:
    """``[S, Na, S, N]`` logits with each anchor's own view (``a, i, a, index[i]``) at -inf.

    Set in place on the matrix product itself (its backward does not need its output), which
    spares a copy of the largest tensor of the loss.
    """
    s, na, _, n = batch.shape
    device = batch.logits.device
    streams = torch.arange(s, device=device).view(s, 1)
    rows = (streams * na + torch.arange(na, device=device).view(1, na)).reshape(-1)
    columns = (streams * n + batch.locations.view(1, na)).reshape(-1)
    minus_inf = torch.full((s * na,), float("-inf"), dtype=batch.logits.dtype, device=device)
    return batch.logits.index_put_((rows, columns), minus_inf).view(batch.shape)


def _mean_over_anchors(per_anchor: Tensor, keep: Tensor) -> Tensor:
    """Mean of ``[S, Na]`` over kept anchors; 0 (still in the graph) when none is kept."""
    rows = keep.view(1, -1).expand_as(per_anchor)
    if not bool(rows.any()):
        # keep the graph connected (DDP expects a gradient for every parameter)
        return 0.0 * per_anchor.nan_to_num(0.0, 0.0, 0.0).sum()
    return per_anchor[rows].mean()


def _similarity_stats(batch: _Batch) -> tuple[Tensor, Tensor]:
    """Mean cosine similarity of kept anchors to positives and negatives (before masking)."""
    with torch.no_grad():
        s, na, _, n = batch.shape
        logits = batch.logits.view(batch.shape)
        own = _at_own_location(logits, batch.locations)  # [S, Na, S]
        others = ~torch.eye(s, dtype=torch.bool, device=own.device)  # [S, S]
        positives = torch.where(others[:, None, :], own, 0.0).sum(-1)  # [S, Na]
        negatives = logits.sum(dim=(2, 3)) - own.sum(-1)  # [S, Na]
        keep = batch.keep.view(1, -1).expand(s, na)
        if not bool(keep.any()):
            zero = batch.logits.new_zeros(())
            return zero, zero
        scale = torch.as_tensor(batch.scale, dtype=own.dtype, device=own.device)
        pos = positives[keep].sum() / (keep.sum() * max(s - 1, 1)) / scale
        neg = negatives[keep].sum() / (keep.sum() * max(s * (n - 1), 1)) / scale
        return pos, neg


def multi_positive_info_nce(
    embeddings: Mapping[str, Tensor] | Tensor,
    logit_scale: Tensor | float,
    *,
    negatives_only: Tensor | None = None,
    anchors: slice | Tensor | None = None,
    intra_modal_weight: float = 0.0,
) -> ContrastiveOutput:
    """Multi-positive InfoNCE over every view of a batch (see the module docstring).

    Args:
        embeddings: Modality -> ``[N, D]`` or ``[N, T, D]``, or stacked ``[M, T, N, D]``;
            normalised here (cosine similarity), computed in float32 at least (float16 and
            bfloat16 are upcast).
        logit_scale: ``1 / tau`` (a float or a scalar tensor, learnable or not).
        negatives_only: ``[N]`` bool; True for locations that are never anchors nor positives.
        anchors: Locations whose views are anchors (a slice or ``[Na]`` indexes into ``N``);
            default all. Under DDP: this process's share of the gathered batch.
        intra_modal_weight: Weight of the intra-modal term: the same loss restricted to the
            views of the anchor's own modality (its positives are its augmented copies), which
            keeps what only one sensor sees. Needs ``T >= 2``.

    Returns:
        The loss and its parts; the contrastive term is averaged over every kept anchor view.
    """
    views = stack_views(embeddings)
    m, t = int(views.shape[0]), int(views.shape[1])
    if m * t < 2:
        raise InvalidInputError(
            "one modality with one view has no positive: give two modalities or T >= 2 "
            "augmented views"
        )
    if intra_modal_weight < 0:
        raise InvalidInputError(f"intra_modal_weight={intra_modal_weight}: must be >= 0")
    if intra_modal_weight > 0 and t < 2:
        raise InvalidInputError(
            "the intra-modal term needs at least two augmented views per modality (T >= 2): "
            "set views.count >= 2 or intra_modal_weight = 0"
        )
    batch = _batch(views, logit_scale, negatives_only, anchors)
    s, na, _, n = batch.shape
    pos, neg = _similarity_stats(batch)
    logits = _without_self(batch)  # [S, Na, S, N]
    # log-softmax over every other view of the batch, read at the positives only
    normaliser = torch.logsumexp(logits.reshape(s, na, s * n), dim=-1)  # [S, Na]
    positive = _at_own_location(logits, batch.locations)  # [S, Na, S], -inf at the anchor itself
    others = ~torch.eye(s, dtype=torch.bool, device=logits.device)[:, None, :]  # [S, 1, S]
    log_prob = torch.where(others, positive - normaliser[..., None], 0.0)
    contrastive = _mean_over_anchors(-log_prob.sum(-1) / (s - 1), batch.keep)
    intra = contrastive.new_zeros(())
    if intra_modal_weight > 0:
        # the same rows restricted to the anchor's own modality: [S, Na, T, N]
        own_modality = (torch.arange(s, device=logits.device) // t).view(s, 1, 1, 1, 1)
        blocks = logits.view(s, na, m, t, n)
        same = blocks.gather(2, own_modality.expand(s, na, 1, t, n)).squeeze(2)
        intra_norm = torch.logsumexp(same.reshape(s, na, t * n), dim=-1)  # [S, Na]
        copies = (
            positive.view(s, na, m, t)
            .gather(2, own_modality.view(s, 1, 1, 1).expand(s, na, 1, t))
            .squeeze(2)
        )  # [S, Na, T]
        not_self = (
            torch.arange(t, device=logits.device).view(1, t)
            != (torch.arange(s, device=logits.device) % t).view(s, 1)
        )[:, None, :]  # [S, 1, T]
        intra_log_prob = torch.where(not_self, copies - intra_norm[..., None], 0.0)
        intra = _mean_over_anchors(-intra_log_prob.sum(-1) / (t - 1), batch.keep)
    total = contrastive + intra_modal_weight * intra
    return ContrastiveOutput(total, contrastive, intra, pos, neg)


def pairwise_info_nce(
    embeddings: Mapping[str, Tensor] | Tensor,
    logit_scale: Tensor | float,
    *,
    negatives_only: Tensor | None = None,
    anchors: slice | Tensor | None = None,
) -> ContrastiveOutput:
    """Pairwise symmetric InfoNCE (CLIP, Radford et al. 2021) over every pair of view streams.

    A stream is one (modality, view) of the batch, ``S = M * T`` of them. For every ordered pair
    of distinct streams ``(a, b)``, each anchor of ``a`` is classified among the ``N`` locations
    of ``b`` (cross-entropy, target its own location); the loss is the mean over pairs and
    anchors, so each unordered pair contributes CLIP's symmetric loss. Unlike the multi-positive
    loss, each pair has its own softmax (``S * (S - 1)`` normalisations, all taken from the same
    ``[S, Na, S, N]`` similarity tensor here). For comparison with :func:`multi_positive_info_nce`
    (same arguments).
    """
    views = stack_views(embeddings)
    if views.shape[0] * views.shape[1] < 2:
        raise InvalidInputError("the pairwise loss needs two modalities or T >= 2 views")
    batch = _batch(views, logit_scale, negatives_only, anchors)
    s = batch.shape[0]
    logits = batch.logits.view(batch.shape)  # [S, Na, S, N]
    log_prob = _at_own_location(logits, batch.locations) - torch.logsumexp(logits, dim=-1)
    others = ~torch.eye(s, dtype=torch.bool, device=logits.device)[:, None, :]  # [S, 1, S]
    per_anchor = -torch.where(others, log_prob, 0.0).sum(-1) / (s - 1)  # [S, Na]
    loss = _mean_over_anchors(per_anchor, batch.keep)
    pos, neg = _similarity_stats(batch)
    zero = loss.new_zeros(())
    return ContrastiveOutput(loss, loss, zero, pos, neg)


class Temperature(nn.Module):
    """The softmax temperature ``tau``, fixed or learnable (as ``log(1 / tau)``, like CLIP).

    Args:
        temperature: Initial (or fixed) ``tau`` in (0, 1]; 0.07-0.2 are usual.
        learnable: Learn ``log(1 / tau)``; the scale ``1 / tau`` is clamped to
            :data:`MAX_LOGIT_SCALE`.
    """

    def __init__(self, temperature: float = 0.1, *, learnable: bool = False) -> None:
        super().__init__()
        if not 0.0 < temperature <= 1.0 or not math.isfinite(temperature):
            raise InvalidInputError(
                f"temperature={temperature}: use a value in (0, 1] (0.07-0.2 are usual); "
                "small values sharpen the softmax"
            )
        if 1.0 / temperature > MAX_LOGIT_SCALE:
            raise InvalidInputError(
                f"temperature={temperature} is below {1 / MAX_LOGIT_SCALE}: the logit scale "
                f"1/tau would exceed {MAX_LOGIT_SCALE}"
            )
        log_scale = torch.tensor(math.log(1.0 / temperature))
        self.learnable = learnable
        if learnable:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale)

    def forward(self) -> Tensor:
        """The logit scale ``1 / tau`` (a scalar tensor)."""
        return self.log_scale.clamp(max=math.log(MAX_LOGIT_SCALE)).exp()

    @property
    def value(self) -> float:
        """The current ``tau``."""
        return float(1.0 / self().detach())


class MultiPositiveInfoNCE(nn.Module):
    """Multi-positive InfoNCE over modalities x views x locations (Berg et al.; SupCon L_out).

    Args:
        temperature: ``tau``, initial value if learnable.
        learnable_temperature: Learn ``tau`` with the encoders.
        intra_modal_weight: Weight of the intra-modal term (needs ``T >= 2`` views).
    """

    def __init__(
        self,
        temperature: float = 0.1,
        *,
        learnable_temperature: bool = False,
        intra_modal_weight: float = 0.0,
    ) -> None:
        super().__init__()
        if intra_modal_weight < 0 or not math.isfinite(intra_modal_weight):
            raise InvalidInputError(f"intra_modal_weight={intra_modal_weight}: must be >= 0")
        self.temperature = Temperature(temperature, learnable=learnable_temperature)
        self.intra_modal_weight = intra_modal_weight

    def forward(
        self,
        embeddings: Mapping[str, Tensor] | Tensor,
        negatives_only: Tensor | None = None,
        anchors: slice | Tensor | None = None,
    ) -> ContrastiveOutput:
        """Loss of ``embeddings`` (modality -> ``[N, D]`` / ``[N, T, D]``); see the function."""
        return multi_positive_info_nce(
            embeddings,
            self.temperature(),
            negatives_only=negatives_only,
            anchors=anchors,
            intra_modal_weight=self.intra_modal_weight,
        )


class PairwiseInfoNCE(nn.Module):
    """Pairwise symmetric CLIP loss over every pair of (modality, view) streams.

    Args:
        temperature: ``tau``, initial value if learnable.
        learnable_temperature: Learn ``tau`` with the encoders.
    """

    def __init__(self, temperature: float = 0.1, *, learnable_temperature: bool = False) -> None:
        super().__init__()
        self.temperature = Temperature(temperature, learnable=learnable_temperature)

    def forward(
        self,
        embeddings: Mapping[str, Tensor] | Tensor,
        negatives_only: Tensor | None = None,
        anchors: slice | Tensor | None = None,
    ) -> ContrastiveOutput:
        """Loss of ``embeddings`` (modality -> ``[N, D]`` / ``[N, T, D]``); see the function."""
        return pairwise_info_nce(
            embeddings, self.temperature(), negatives_only=negatives_only, anchors=anchors
        )
