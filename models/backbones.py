"""Backbones for any number of input channels: MLP, spectral front end, AlexNet-style, ResNets.

Every backbone maps one input to a feature vector and exposes ``out_features``:

- :class:`MLPBackbone`: per-pixel feature vectors ``[N, C]`` -> ``[N, F]``.
- :class:`SpectralFrontEnd`: a 1-D convolution along the band axis, shared by every pixel:
  ``[N, C]`` or ``[N, C, H, W]`` with hundreds of bands -> ``[N, K]`` / ``[N, K, H, W]``.
- :class:`AlexNetBackbone`: a small AlexNet-style CNN for 10 m patches (the per-sensor
  encoder of Berg et al.): ``[N, C, H, W]`` -> ``[N, 256]``.
- :func:`torchvision_resnet` and :func:`timm_backbone`: ResNet-18/50 (torchvision) or any timm
  model, created without weights and with a first layer for ``C`` channels.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from geoalign.errors import InvalidInputError


def _check_channels(in_channels: int) -> None:
    if in_channels < 1:
        raise InvalidInputError(f"in_channels={in_channels}: a modality needs at least one band")


class MLPBackbone(nn.Module):
    """Linear -> LayerNorm -> GELU blocks for per-pixel feature vectors.

    Args:
        in_channels: Features per pixel ``C``.
        hidden: Widths of the hidden layers; the last is ``out_features``.
    """

    def __init__(self, in_channels: int, hidden: list[int]) -> None:
        super().__init__()
        _check_channels(in_channels)
        if not hidden or min(hidden) < 1:
            raise InvalidInputError(f"hidden={hidden}: give at least one positive layer width")
        layers: list[nn.Module] = []
        width = in_channels
        for size in hidden:
            layers += [nn.Linear(width, size), nn.LayerNorm(size), nn.GELU()]
            width = size
        self.layers = nn.Sequential(*layers)
        self.out_features = width

    def forward(self, x: Tensor) -> Tensor:
        """``[N, C]`` -> ``[N, F]``."""
        if x.ndim != 2:
            raise InvalidInputError(
                f"the mlp encoder takes per-pixel vectors [N, C], got {tuple(x.shape)}: use a "
                "CNN encoder (alexnet, resnet18...) for image windows"
            )
        out: Tensor = self.layers(x)
        return out


class SpectralFrontEnd(nn.Module):
    """Learned spectral features: 1-D convolutions along the bands, shared by every pixel.

    Neighbouring bands of an imaging spectrometer are strongly correlated; convolving along the
    spectrum (as 1-D spectral CNNs do, e.g. Hu et al. 2015) needs few weights whatever the
    number of bands, then adaptive pooling gives a fixed number of features per pixel.

    Args:
        in_channels: Number of bands ``C`` (tens to hundreds).
        out_features: Features per pixel ``K`` (a multiple of ``width``).
        width: Convolution channels.
    """

    def __init__(self, in_channels: int, out_features: int, width: int = 8) -> None:
        super().__init__()
        _check_channels(in_channels)
        if out_features < width or out_features % width:
            raise InvalidInputError(
                f"spectral_features={out_features}: use a multiple of {width} (e.g. 32 or 64)"
            )
        self.conv = nn.Sequential(
            nn.Conv1d(1, width, kernel_size=7, padding=3),
            nn.GELU(),
            nn.Conv1d(width, width, kernel_size=5, padding=2, stride=2 if in_channels >= 32 else 1),
            nn.GELU(),
        )
        self.pool = nn.AdaptiveAvgPool1d(out_features // width)
        self.out_features = out_features

    def forward(self, x: Tensor) -> Tensor:
        """``[N, C]`` -> ``[N, K]``, or ``[N, C, H, W]`` -> ``[N, K, H, W]``."""
        if x.ndim == 2:
            return self._spectra(x)
        if x.ndim != 4:
            raise InvalidInputError(f"spectral front end input {tuple(x.shape)}: [N, C(, H, W)]")
        n, c, h, w = x.shape
        spectra = x.permute(0, 2, 3, 1).reshape(n * h * w, c)
        return self._spectra(spectra).reshape(n, h, w, -1).permute(0, 3, 1, 2)

    def _spectra(self, spectra: Tensor) -> Tensor:
        features: Tensor = self.pool(self.conv(spectra.unsqueeze(1)))  # [P, width, K / width]
        return features.flatten(1)


class AlexNetBackbone(nn.Module):
    """A small AlexNet-style CNN (5 convolutions, ReLU, max-pooling) for 10 m image patches.

    Args:
        in_channels: Bands ``C``.
        small_input: Keep the resolution longer (no first pooling), for windows under 32 px.
    """

    def __init__(self, in_channels: int, *, small_input: bool = False) -> None:
        super().__init__()
        _check_channels(in_channels)
        first_pool: nn.Module = nn.Identity() if small_input else nn.MaxPool2d(2)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 64, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            first_pool,
            nn.Conv2d(64, 128, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(128, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
        )
        self.out_features = 256

    def forward(self, x: Tensor) -> Tensor:
        """``[N, C, H, W]`` -> ``[N, 256]``."""
        out: Tensor = self.features(x)
        return out.flatten(1)


class _Flatten(nn.Module):
    """Wrap a model whose output may keep spatial dims into ``[N, F]``."""

    def __init__(self, model: nn.Module, out_features: int) -> None:
        super().__init__()
        self.model = model
        self.out_features = out_features

    def forward(self, x: Tensor) -> Tensor:
        """``[N, C, H, W]`` -> ``[N, F]``."""
        out: Tensor = self.model(x)
        return F.adaptive_avg_pool2d(out, 1).flatten(1) if out.ndim == 4 else out.flatten(1)


def torchvision_resnet(name: str, in_channels: int, *, small_input: bool = False) -> nn.Module:
    """A torchvision ResNet-18/50 without weights, its first convolution for ``C`` bands.

    Args:
        name: ``"resnet18"`` or ``"resnet50"``.
        in_channels: Bands ``C``.
        small_input: First convolution 3x3 with stride 1 and no max-pooling (windows < 64 px).

    Returns:
        A module ``[N, C, H, W]`` -> ``[N, 512]`` (ResNet-18) or ``[N, 2048]`` (ResNet-50).
    """
    from torchvision.models import resnet18, resnet50

    _check_channels(in_channels)
    factories = {"resnet18": resnet18, "resnet50": resnet50}
    if name not in factories:
        raise InvalidInputError(f"unknown torchvision backbone {name!r}: use {sorted(factories)}")
    model = factories[name](weights=None)
    if small_input:
        model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    elif in_channels != 3:
        model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    out_features = int(model.fc.in_features)
    model.fc = nn.Identity()
    return _Flatten(model, out_features)


def timm_backbone(name: str, in_channels: int) -> nn.Module:
    """Any timm model created without weights (``num_classes=0``: pooled features).

    Raises:
        InvalidInputError: timm does not know ``name``.
    """
    import timm

    _check_channels(in_channels)
    try:
        model = timm.create_model(name, pretrained=False, in_chans=in_channels, num_classes=0)
    except RuntimeError as error:
        raise InvalidInputError(
            f"timm cannot create {name!r} ({error}): see timm.list_models() for the names"
        ) from None
    return _Flatten(model, out_width(model, "num_features"))


def out_width(module: nn.Module, attribute: str = "out_features") -> int:
    """A module's declared output width (an ``int`` attribute, ``out_features`` by default)."""
    value = module.__dict__.get(attribute)
    if not isinstance(value, int):
        raise InvalidInputError(
            f"{type(module).__name__} declares no integer {attribute!r}: a backbone must tell "
            "its output width"
        )
    return value
