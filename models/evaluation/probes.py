"""Frozen-feature protocols: linear probe (L-BFGS logistic / closed-form ridge) and kNN.

    probe = LinearProbe(kind="classification", num_classes=15, l2=1e-3).fit(z_train, y_train)
    predicted = probe.predict(z_test)                  # [N] classes
    predicted = knn_predict(z_train, y_train, z_test, kind="classification", k=20,
                            num_classes=15)

Features are standardised with the training features' statistics. The logistic regression is
full-batch L-BFGS in float64 from zero weights (a convex problem: one optimum, the same result
for every run); ridge regression is solved in closed form. kNN uses cosine similarity and a
similarity-weighted vote (classification), mean (regression) or vote per class (multilabel).
Segmentation probes are per-pixel: the feature maps are upsampled to the label grid and every
labelled pixel is a sample.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from geoalign.errors import InvalidInputError
from geoalign.models.evaluation.tasks import TaskKind


@contextlib.contextmanager
def single_thread(enabled: bool = True) -> Iterator[None]:
    """Run torch on one intra-op thread, then restore the previous count.

    For small problems thread hand-offs cost more than the arithmetic (an L-BFGS probe step
    was 15x slower on two threads than on one on a busy 2-core machine).
    """
    before = torch.get_num_threads()
    if enabled:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class LinearProbe:
    """A linear model on frozen features.

    Args:
        kind: Task kind (segmentation probes are classification of pixels).
        num_classes: Classes ``K`` (regression: targets ``T``).
        l2: L2 penalty on the weights (mean loss + ``l2 * ||W||^2``).
        max_iter: L-BFGS iterations.
    """

    kind: TaskKind
    num_classes: int
    l2: float = 1e-4
    max_iter: int = 200
    weight: Tensor | None = field(default=None, repr=False)
    bias: Tensor | None = field(default=None, repr=False)
    mean: Tensor | None = field(default=None, repr=False)
    std: Tensor | None = field(default=None, repr=False)

    def fit(self, features: Tensor, target: Tensor) -> LinearProbe:
        """Fit on ``[N, F]`` features and targets (``[N]`` classes, ``[N, K]`` or values)."""
        if features.shape[0] == 0:
            raise InvalidInputError("no training sample for the linear probe")
        x = features.double()
        self.mean = x.mean(0)
        self.std = x.std(0, unbiased=False) + 1e-6
        x = (x - self.mean) / self.std
        if self.kind == "regression":
            self._fit_ridge(x, target.double().reshape(x.shape[0], -1))
            return self
        k = self.num_classes
        weight = torch.zeros(x.shape[1], k, dtype=torch.float64, requires_grad=True)
        bias = torch.zeros(k, dtype=torch.float64, requires_grad=True)
        optimizer = torch.optim.LBFGS(
            [weight, bias], lr=1.0, max_iter=self.max_iter, line_search_fn="strong_wolfe"
        )
        multilabel = self.kind == "multilabel"
        y = target.double() if multilabel else target.long()

        def closure() -> Tensor:
            optimizer.zero_grad()
            logits = x @ weight + bias
            if multilabel:
                loss = F.binary_cross_entropy_with_logits(logits, y)
            else:
                loss = F.cross_entropy(logits, y)
            loss = loss + self.l2 * weight.pow(2).sum()
            loss.backward()  # type: ignore[no-untyped-call]
            return loss

        with single_thread(x.numel() * k < 5_000_000):
            optimizer.step(closure)  # type: ignore[no-untyped-call]
        self.weight, self.bias = weight.detach(), bias.detach()
        return self

    def _fit_ridge(self, x: Tensor, y: Tensor) -> None:
        n, f = x.shape
        y_mean = y.mean(0)
        gram = x.T @ x / n + self.l2 * torch.eye(f, dtype=x.dtype)
        self.weight = torch.linalg.solve(gram, x.T @ (y - y_mean) / n)
        self.bias = y_mean

    def decision(self, features: Tensor) -> Tensor:
        """Logits (or regression values) ``[N, K]``."""
        if self.weight is None or self.bias is None or self.mean is None or self.std is None:
            raise InvalidInputError("the probe is not fitted: call fit() first")
        x = (features.double() - self.mean) / self.std
        return x @ self.weight + self.bias

    def predict(self, features: Tensor) -> Tensor:
        """Classes ``[N]``, {0, 1} ``[N, K]`` (multilabel) or values ``[N]`` / ``[N, T]``."""
        out = self.decision(features)
        if self.kind == "regression":
            return out.float().squeeze(1) if out.shape[1] == 1 else out.float()
        if self.kind == "multilabel":
            return (out > 0).long()
        return out.argmax(1)


def knn_predict(
    train: Tensor,
    target: Tensor,
    test: Tensor,
    *,
    kind: TaskKind,
    k: int,
    num_classes: int,
    batch_size: int = 4096,
) -> Tensor:
    """Predictions of a cosine-similarity kNN (shapes as :meth:`LinearProbe.predict`).

    Raises:
        InvalidInputError: ``k`` < 1, or a segmentation task (use the probe).
    """
    if k < 1:
        raise InvalidInputError(f"knn k={k}: give at least 1")
    if kind == "segmentation":
        raise InvalidInputError("kNN is not defined for segmentation here: use linear_probe")
    k = min(k, int(train.shape[0]))
    a = F.normalize(train.float(), dim=1)
    out = []
    for start in range(0, int(test.shape[0]), batch_size):
        b = F.normalize(test[start : start + batch_size].float(), dim=1)
        similarity, index = (b @ a.T).topk(k, dim=1)  # [B, k]
        if kind == "regression":
            out.append(target.float()[index].mean(1))
        elif kind == "multilabel":
            out.append((target.float()[index].mean(1) > 0.5).long())
        else:
            votes = torch.zeros(b.shape[0], num_classes)
            votes.scatter_add_(1, target.long()[index], similarity.clamp(min=0) + 1e-6)
            out.append(votes.argmax(1))
    return torch.cat(out)
