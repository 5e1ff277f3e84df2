"""Cross-modal retrieval, augmented views and seeded global batches."""

from __future__ import annotations

import pytest
import torch

from geoalign.errors import InvalidInputError
from geoalign.models import (
    CrossModalRetrieval,
    GlobalBatchSampler,
    ModalitySpec,
    ViewsConfig,
    cross_modal_retrieval,
)
from geoalign.models.retrieval import retrieval_ranks
from geoalign.models.views import make_views, view_generator


def naive_topk(a: torch.Tensor, b: torch.Tensor, k: int) -> float:
    hits = 0
    for i in range(a.shape[0]):
        sims = [torch.cosine_similarity(a[i], b[j], dim=0).item() for j in range(b.shape[0])]
        better = sum(1 for j, s in enumerate(sims) if s > sims[i])
        hits += better < k
    return hits / a.shape[0]


def test_retrieval_matches_a_naive_ranking_for_every_pair():
    generator = torch.Generator().manual_seed(0)
    base = torch.randn(40, 8, generator=generator)
    embeddings = {
        "s2": base + 0.8 * torch.randn(40, 8, generator=generator),
        "s1": base + 0.8 * torch.randn(40, 8, generator=generator),
        "naip": torch.randn(40, 8, generator=generator),
    }
    result = cross_modal_retrieval(embeddings)
    for a in embeddings:
        for b in embeddings:
            if a != b:
                for k in (1, 5):
                    expected = naive_topk(embeddings[a], embeddings[b], k)
                    assert result[f"top{k}/{a}_to_{b}"] == pytest.approx(expected)
    assert result["chance_top1"] == pytest.approx(1 / 40)
    assert result["locations"] == 40
    assert result["top1/s2_to_s1"] > result["top1/s2_to_naip"]
    pairs = [v for key, v in result.items() if key.startswith("top5/")]
    assert result["top5"] == pytest.approx(sum(pairs) / 6)


def test_identical_and_shuffled_embeddings():
    z = torch.randn(50, 16)
    assert cross_modal_retrieval({"a": z, "b": 3 * z})["top1"] == 1.0
    shuffled = cross_modal_retrieval({"a": z, "b": z[torch.randperm(50)]})
    assert shuffled["top1"] < 0.2
    # blocks give the same ranks as one big matrix
    torch.testing.assert_close(
        retrieval_ranks(z, z.flip(0), block=7), retrieval_ranks(z, z.flip(0))
    )


def test_metric_accumulates_batches():
    z = torch.randn(30, 4)
    w = z + 0.1 * torch.randn(30, 4)
    metric = CrossModalRetrieval(["a", "b"])
    for start in range(0, 30, 8):
        metric.update({"a": z[start : start + 8], "b": w[start : start + 8]})
    assert metric.compute() == cross_modal_retrieval({"a": z, "b": w})
    with pytest.raises(InvalidInputError, match="two modalities"):
        CrossModalRetrieval(["a"])
    with pytest.raises(InvalidInputError, match="same locations"):
        retrieval_ranks(torch.randn(3, 4), torch.randn(4, 4))


def test_views_are_seeded_and_keep_shapes():
    spec = ModalitySpec(3)
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    config = ViewsConfig(count=3, gain_std=0.0, noise_std=0.0)
    views = make_views(x, spec, config, view_generator(x.device, 0, 1, 2))
    assert views.shape == (6, 3, 4, 4)
    again = make_views(x, spec, config, view_generator(x.device, 0, 1, 2))
    torch.testing.assert_close(views, again)
    # geometric only: every view holds the same pixel values, rearranged
    for v in range(3):
        for i in range(2):
            torch.testing.assert_close(views[v * 2 + i].flatten().sort().values, x[i].flatten())
    assert make_views(x, spec, ViewsConfig(count=1), view_generator(x.device, 0)) is x
    # non-square windows never turn by 90 degrees; vectors get gain and noise
    wide = torch.randn(4, 2, 3, 5)
    turned = make_views(wide, ModalitySpec(2), config, view_generator(x.device, 1))
    assert turned.shape == (12, 2, 3, 5)
    vectors = torch.randn(5, 21)
    noisy = make_views(
        vectors, ModalitySpec(21, spatial=False), ViewsConfig(count=2), view_generator(x.device, 2)
    )
    assert noisy.shape == (10, 21) and not torch.equal(noisy[:5], vectors)


def test_global_batches_split_across_processes_like_one_big_batch():
    one = GlobalBatchSampler(20, 8, seed=3)
    one.set_epoch(2)
    ranks = [GlobalBatchSampler(20, 4, rank=r, world_size=2, seed=3) for r in range(2)]
    for sampler in ranks:
        sampler.set_epoch(2)
    single = list(one)
    shares = [list(s) for s in ranks]
    assert len(single) == 16 and len(one) == 16 and all(len(s) == 8 for s in shares)
    for batch in range(2):
        expected = single[batch * 8 : (batch + 1) * 8]
        got = shares[0][batch * 4 : (batch + 1) * 4] + shares[1][batch * 4 : (batch + 1) * 4]
        assert got == expected
    other_epoch = GlobalBatchSampler(20, 8, seed=3)
    other_epoch.set_epoch(3)
    assert list(other_epoch) != single
    every = GlobalBatchSampler(7, 3, rank=1, world_size=2, shuffle=False, drop_last=False)
    assert sorted(
        list(every) + list(GlobalBatchSampler(7, 3, world_size=2, shuffle=False, drop_last=False))
    ) == list(range(7))
    with pytest.raises(InvalidInputError, match="global batch"):
        GlobalBatchSampler(5, 4, world_size=2)
