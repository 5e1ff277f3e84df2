"""The contrastive losses against naive references (explicit loops, float64), with gradients."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from geoalign.errors import InvalidInputError
from geoalign.models import (
    MultiPositiveInfoNCE,
    PairwiseInfoNCE,
    Temperature,
    multi_positive_info_nce,
    pairwise_info_nce,
)


def naive_multi_positive(
    z: torch.Tensor,
    scale: float,
    negatives_only: list[bool] | None = None,
    anchors: list[int] | None = None,
    intra: bool = False,
) -> torch.Tensor:
    """The formula of the issue, one anchor and one positive at a time. z: [M, T, N, D]."""
    m, t, n, _ = z.shape
    views = [(a, b, c) for a in range(m) for b in range(t) for c in range(n)]
    emb = {v: z[v] / z[v].norm() for v in views}
    losses = []
    for anchor in views:
        ma, _, la = anchor
        if anchors is not None and la not in anchors:
            continue
        if negatives_only is not None and negatives_only[la]:
            continue
        others = [v for v in views if v != anchor and (not intra or v[0] == ma)]
        positives = [v for v in others if v[2] == la]
        if not positives:
            continue
        denominator = sum(torch.exp(scale * emb[anchor].dot(emb[v])) for v in others)
        terms = [
            torch.log(torch.exp(scale * emb[anchor].dot(emb[p])) / denominator) for p in positives
        ]
        losses.append(-sum(terms) / len(positives))
    return sum(losses) / len(losses)


def naive_pairwise(z: torch.Tensor, scale: float, negatives_only: list[bool] | None = None):
    """CLIP: for every ordered pair of distinct streams, cross-entropy of each anchor."""
    m, t, n, _ = z.shape
    streams = [z[a, b] / z[a, b].norm(dim=-1, keepdim=True) for a in range(m) for b in range(t)]
    losses = []
    for i, j in itertools.permutations(range(len(streams)), 2):
        for loc in range(n):
            if negatives_only is not None and negatives_only[loc]:
                continue
            logits = [scale * streams[i][loc].dot(streams[j][k]) for k in range(n)]
            denominator = sum(torch.exp(x) for x in logits)
            losses.append(-torch.log(torch.exp(logits[loc]) / denominator))
    return sum(losses) / len(losses)


SHAPES = [
    (m, t, n, d)
    for m, t, n, d in itertools.product((1, 2, 3), (1, 2, 3), (1, 2, 5), (3, 8))
    if m * t >= 2
]


@pytest.mark.parametrize(("m", "t", "n", "d"), SHAPES)
def test_multi_positive_matches_the_naive_loops_with_gradients(m: int, t: int, n: int, d: int):
    generator = torch.Generator().manual_seed(m * 100 + t * 10 + n + d)
    z = torch.randn(m, t, n, d, dtype=torch.float64, generator=generator)
    fast_in = z.clone().requires_grad_(True)
    slow_in = z.clone().requires_grad_(True)
    out = multi_positive_info_nce(fast_in, 7.0).loss  # float64 end to end
    expected = naive_multi_positive(slow_in, 7.0)
    torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=1e-6)
    out.backward()
    expected.backward()
    torch.testing.assert_close(fast_in.grad, slow_in.grad, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(("m", "t", "n"), [(2, 1, 4), (3, 2, 3), (1, 3, 4)])
def test_pairwise_clip_matches_the_naive_loops_with_gradients(m: int, t: int, n: int):
    z = torch.randn(m, t, n, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    fast_in = z.clone().requires_grad_(True)
    slow_in = z.clone().requires_grad_(True)
    out = pairwise_info_nce(fast_in, 5.0).loss
    expected = naive_pairwise(slow_in, 5.0)
    torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=1e-6)
    out.backward()
    expected.backward()
    torch.testing.assert_close(fast_in.grad, slow_in.grad, rtol=1e-4, atol=1e-6)


def test_two_views_clip_is_symmetric_and_equals_multi_positive_for_two_streams():
    # with exactly two streams, each anchor has one positive; the multi-positive denominator
    # also holds the anchor's own stream, so the two differ, but CLIP must be symmetric
    z = torch.randn(2, 1, 6, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    swapped = z.flip(0)
    torch.testing.assert_close(pairwise_info_nce(z, 3.0).loss, pairwise_info_nce(swapped, 3.0).loss)
    torch.testing.assert_close(
        multi_positive_info_nce(z, 3.0).loss, multi_positive_info_nce(swapped, 3.0).loss
    )


def test_gradcheck_multi_positive_and_intra_modal_and_pairwise():
    z = torch.randn(2, 2, 3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    z.requires_grad_(True)
    negatives = torch.tensor([False, True, False])
    assert torch.autograd.gradcheck(
        lambda x: multi_positive_info_nce(x, 4.0, intra_modal_weight=0.5).loss, (z,)
    )
    assert torch.autograd.gradcheck(
        lambda x: multi_positive_info_nce(x, 4.0, negatives_only=negatives).loss, (z,)
    )
    assert torch.autograd.gradcheck(lambda x: pairwise_info_nce(x, 4.0).loss, (z,))
    scale = torch.tensor(5.0, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda s: multi_positive_info_nce(z.detach(), s).loss, (scale,))


@pytest.mark.parametrize("kind", ["multi", "pairwise"])
def test_negatives_only_locations_are_never_anchors_but_stay_negatives(kind: str):
    z = torch.randn(2, 2, 5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    flags = [False, True, False, True, False]
    negatives = torch.tensor(flags)
    if kind == "multi":
        out = multi_positive_info_nce(z, 6.0, negatives_only=negatives).loss
        expected = naive_multi_positive(z, 6.0, negatives_only=flags)
    else:
        out = pairwise_info_nce(z, 6.0, negatives_only=negatives).loss
        expected = naive_pairwise(z, 6.0, negatives_only=flags)
    torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=1e-6)
    # they still act as negatives: moving one changes the loss of the others
    moved = z.clone()
    moved[:, :, 1] = -moved[:, :, 1]
    fn = multi_positive_info_nce if kind == "multi" else pairwise_info_nce
    assert not torch.allclose(fn(moved, 6.0, negatives_only=negatives).loss, out)


def test_all_negatives_only_gives_a_zero_loss_connected_to_the_graph():
    z = torch.randn(2, 1, 3, 4, requires_grad=True)
    out = multi_positive_info_nce(z, 5.0, negatives_only=torch.ones(3, dtype=torch.bool))
    assert out.loss.item() == 0.0
    out.loss.backward()
    assert z.grad is not None and torch.count_nonzero(z.grad) == 0


def test_augmented_views_are_positives_and_the_intra_modal_term_matches_naive():
    z = torch.randn(3, 2, 4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    out = multi_positive_info_nce(z, 5.0, intra_modal_weight=0.25)
    torch.testing.assert_close(out.contrastive.double(), naive_multi_positive(z, 5.0))
    torch.testing.assert_close(out.intra_modal.double(), naive_multi_positive(z, 5.0, intra=True))
    torch.testing.assert_close(out.loss, out.contrastive + 0.25 * out.intra_modal)


def test_anchor_rows_split_the_loss_as_ddp_does():
    z = torch.randn(2, 2, 6, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    full = multi_positive_info_nce(z, 5.0).loss
    halves = [multi_positive_info_nce(z, 5.0, anchors=s).loss for s in (slice(0, 3), slice(3, 6))]
    torch.testing.assert_close((halves[0] + halves[1]) / 2, full)
    torch.testing.assert_close(halves[0].double(), naive_multi_positive(z, 5.0, anchors=[0, 1, 2]))
    clip = [pairwise_info_nce(z, 5.0, anchors=s).loss for s in (slice(0, 3), slice(3, 6))]
    torch.testing.assert_close((clip[0] + clip[1]) / 2, pairwise_info_nce(z, 5.0).loss)


def test_dict_input_stacks_modalities_and_views():
    a, b = torch.randn(4, 2, 8), torch.randn(4, 2, 8)
    stacked = torch.stack([a.transpose(0, 1), b.transpose(0, 1)])
    loss = MultiPositiveInfoNCE(0.2)
    torch.testing.assert_close(loss({"a": a, "b": b}).loss, loss(stacked).loss)
    one_view = loss({"a": a[:, 0], "b": b[:, 0]}).loss
    torch.testing.assert_close(one_view, loss({"a": a[:, :1], "b": b[:, :1]}).loss)


def test_perfectly_aligned_embeddings_reach_the_lower_bound():
    # identical embeddings per location, orthogonal across locations: each anchor spreads its
    # probability over its positives and loses only the mass of the negatives
    n, positives = 4, 3
    z = torch.eye(n).repeat(2, 2, 1, 1)  # [M=2, T=2, N, D=N]
    scale = 50.0
    out = multi_positive_info_nce(z, scale).loss
    expected = math.log(positives + (n - 1) * 4 * math.exp(-scale))
    assert out.item() == pytest.approx(expected, abs=1e-5)


def test_temperature_fixed_learnable_and_validated():
    fixed = Temperature(0.1)
    assert fixed().item() == pytest.approx(10.0)
    assert not list(fixed.parameters())
    learnable = Temperature(0.07, learnable=True)
    assert len(list(learnable.parameters())) == 1
    with torch.no_grad():
        learnable.log_scale.fill_(20.0)
    assert learnable().item() == pytest.approx(100.0)  # clamped
    for bad in (0.0, -0.1, 2.0, 0.001, float("nan")):
        with pytest.raises(InvalidInputError, match="temperature"):
            Temperature(bad)
    loss = PairwiseInfoNCE(0.1, learnable_temperature=True)
    z = {"a": torch.randn(3, 4), "b": torch.randn(3, 4)}
    loss(z).loss.backward()
    assert loss.temperature.log_scale.grad is not None


def test_invalid_inputs_name_the_problem():
    with pytest.raises(InvalidInputError, match="no positive"):
        multi_positive_info_nce({"a": torch.randn(3, 4)}, 5.0)
    with pytest.raises(InvalidInputError, match="disagree"):
        multi_positive_info_nce({"a": torch.randn(3, 4), "b": torch.randn(4, 4)}, 5.0)
    with pytest.raises(InvalidInputError, match="T >= 2"):
        multi_positive_info_nce(
            {"a": torch.randn(3, 4), "b": torch.randn(3, 4)}, 5.0, intra_modal_weight=1.0
        )
    with pytest.raises(InvalidInputError, match="one flag per location"):
        multi_positive_info_nce(
            {"a": torch.randn(3, 4), "b": torch.randn(3, 4)}, 5.0, negatives_only=torch.ones(2)
        )
    with pytest.raises(InvalidInputError, match="intra_modal_weight"):
        MultiPositiveInfoNCE(intra_modal_weight=-1)
