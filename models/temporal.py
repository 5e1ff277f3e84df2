"""Time-series encoder: a shared per-date encoder, then attention pooling over dates (L-TAE).

Garnot and Landrieu, "Lightweight Temporal Self-Attention for Classifying Satellite Images
Time Series" (2020, arXiv:2007.00586): each head has one learned *master query*; keys come
from the per-date features plus a sinusoidal encoding of the acquisition date, and the values
are the heads' channel groups of those features. Padded dates (``time_valid`` False) get no
attention; a sample with no valid date pools to zeros.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from geoalign.errors import InvalidInputError

_SECONDS_PER_DAY = 86_400.0


def date_encoding(days: Tensor, width: int, max_period: float) -> Tensor:
    """Sinusoidal encoding of day offsets.

    Args:
        days: ``[N, S]`` days since each sample's first date.
        width: Encoding width (even).
        max_period: Longest period, in days.

    Returns:
        ``[N, S, width]``.
    """
    half = width // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, device=days.device, dtype=torch.float32) / half
    )  # [half], periods from 2*pi days up to max_period
    angles = days.float()[..., None] * freqs  # [N, S, half]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)


class TemporalAttentionPooling(nn.Module):
    """Pool per-date features ``[N, S, F]`` to ``[N, d_model]`` with L-TAE master queries.

    Args:
        in_features: Per-date feature width ``F``.
        d_model: Output width (split into ``heads`` groups).
        heads: Number of master queries.
        max_period_days: Longest period of the date encoding.
    """

    def __init__(
        self, in_features: int, d_model: int = 128, heads: int = 4, max_period_days: float = 1000.0
    ) -> None:
        super().__init__()
        if d_model % heads or d_model % 2:
            raise InvalidInputError(
                f"d_model={d_model} must be even and divisible by heads={heads}"
            )
        self.heads = heads
        self.d_model = d_model
        self.max_period = max_period_days
        self.inp = nn.Sequential(nn.Linear(in_features, d_model), nn.LayerNorm(d_model))
        self.keys = nn.Linear(d_model, d_model)
        self.queries = nn.Parameter(
            torch.randn(heads, d_model // heads) * (d_model // heads) ** -0.5
        )
        self.out = nn.Sequential(nn.Linear(d_model, d_model), nn.LayerNorm(d_model), nn.GELU())
        self.out_features = d_model

    def forward(
        self, features: Tensor, time_valid: Tensor | None = None, dates: Tensor | None = None
    ) -> Tensor:
        """Pool dates.

        Args:
            features: ``[N, S, F]`` per-date features.
            time_valid: ``[N, S]`` bool, False for padded dates (default all valid).
            dates: ``[N, S]`` int seconds since 1970 (default one day apart).

        Returns:
            ``[N, d_model]``.
        """
        n, s, _ = features.shape
        valid = (
            torch.ones(n, s, dtype=torch.bool, device=features.device)
            if time_valid is None
            else time_valid.to(features.device, torch.bool)
        )
        if dates is None:
            days = torch.arange(s, device=features.device, dtype=torch.float32).expand(n, s)
        else:
            seconds = dates.to(features.device, torch.float64)
            first = torch.where(valid, seconds, torch.full_like(seconds, math.inf)).amin(1)
            first = torch.where(torch.isfinite(first), first, torch.zeros_like(first))
            days = ((seconds - first[:, None]) / _SECONDS_PER_DAY).float()
        x = self.inp(features) + date_encoding(days, self.d_model, self.max_period).to(
            features.dtype
        )  # [N, S, d]
        head_dim = self.d_model // self.heads
        keys = self.keys(x).view(n, s, self.heads, head_dim)  # [N, S, H, d/H]
        scores = torch.einsum("nshd,hd->nsh", keys, self.queries.to(keys.dtype)) / math.sqrt(
            head_dim
        )  # [N, S, H]
        scores = scores.masked_fill(~valid[..., None], float("-inf"))
        any_valid = valid.any(dim=1)  # [N]
        # a sample without any valid date would give NaN weights: give it uniform ones, then zero
        scores = torch.where(any_valid[:, None, None], scores, torch.zeros_like(scores))
        weights = torch.softmax(scores, dim=1)  # [N, S, H]
        values = x.view(n, s, self.heads, head_dim)  # [N, S, H, d/H]
        pooled = torch.einsum("nsh,nshd->nhd", weights, values).reshape(n, self.d_model)
        pooled = pooled * any_valid[:, None].to(pooled.dtype)
        out: Tensor = self.out(pooled)
        return out
