"""Encoders for any channel count, spectral front end, date pooling, heads and local weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from geoalign.errors import CorruptDataError, DataFileNotFoundError, InvalidInputError
from geoalign.models import (
    EncoderConfig,
    ModalitySpec,
    SpectralFrontEnd,
    TemporalAttentionPooling,
    TemporalConfig,
    build_encoder,
    load_backbone_weights,
)
from geoalign.models.backbones import torchvision_resnet


@pytest.mark.parametrize("channels", [1, 2, 13, 144])
@pytest.mark.parametrize(
    ("kind", "size", "small"),
    [
        ("alexnet", 16, True),
        ("alexnet", 32, False),
        ("resnet18", 16, True),
        ("timm:resnet10t", 32, False),
    ],
)
def test_image_encoders_take_any_channel_count(kind: str, size: int, small: bool, channels: int):
    torch.manual_seed(0)
    spec = ModalitySpec(channels)
    encoder = build_encoder(spec, EncoderConfig(kind=kind, small_input=small), embed_dim=16)
    out = encoder(torch.randn(3, channels, size, size))
    assert out.embedding.shape == (3, 16)
    assert out.features.shape == (3, encoder.out_features)
    assert out.reconstruction is None
    assert torch.isfinite(out.embedding).all()


def test_resnet50_and_the_torchvision_stem():
    model = torchvision_resnet("resnet50", 5)
    assert model(torch.randn(2, 5, 64, 64)).shape == (2, 2048)
    assert torchvision_resnet("resnet18", 3)(torch.randn(2, 3, 32, 32)).shape == (2, 512)


@pytest.mark.parametrize("channels", [1, 21, 144, 425])
def test_mlp_with_and_without_spectral_front_end(channels: int):
    for features in (None, 32):
        config = EncoderConfig(kind="mlp", hidden=[64, 32], spectral_features=features)
        encoder = build_encoder(ModalitySpec(channels, spatial=False), config, embed_dim=8)
        out = encoder(torch.randn(5, channels))
        assert out.embedding.shape == (5, 8) and out.features.shape == (5, 32)


def test_spectral_front_end_is_shared_by_every_pixel():
    front = SpectralFrontEnd(144, 32)
    image = torch.randn(2, 144, 4, 5)
    out = front(image)
    assert out.shape == (2, 32, 4, 5)
    torch.testing.assert_close(out[1, :, 2, 3], front(image[1:2, :, 2, 3])[0])
    encoder = build_encoder(
        ModalitySpec(144), EncoderConfig(kind="alexnet", spectral_features=16), embed_dim=8
    )
    assert encoder(torch.randn(2, 144, 32, 32)).embedding.shape == (2, 8)
    with pytest.raises(InvalidInputError, match="multiple of 8"):
        SpectralFrontEnd(144, 12)


def test_time_series_encoder_ignores_padded_dates():
    torch.manual_seed(0)
    spec = ModalitySpec(4, series=True)
    encoder = build_encoder(
        spec,
        EncoderConfig(kind="alexnet", small_input=True),
        embed_dim=8,
        temporal=TemporalConfig(d_model=32, heads=4),
    ).eval()
    x = torch.randn(2, 3, 4, 8, 8)
    dates = torch.tensor([[0, 86_400 * 10, 0], [0, 86_400 * 5, 86_400 * 30]])
    valid = torch.tensor([[True, True, False], [True, True, True]])
    out = encoder(x, valid, dates)
    changed = x.clone()
    changed[0, 2] = 100.0  # the padded date of sample 0
    again = encoder(changed, valid, dates)
    torch.testing.assert_close(out.embedding[0], again.embedding[0])
    # the same two dates alone give the same result as with a padded third one
    alone = encoder(x[:1, :2], valid[:1, :2], dates[:1, :2])
    torch.testing.assert_close(out.embedding[0], alone.embedding[0], rtol=1e-5, atol=1e-5)
    # dates matter: shifting the acquisition dates changes the embedding
    shifted = encoder(x, valid, dates * 3)
    assert not torch.allclose(shifted.embedding[1], out.embedding[1])
    # a sample without any valid date is finite
    none = encoder(x, torch.zeros(2, 3, dtype=torch.bool), dates)
    assert torch.isfinite(none.embedding).all()


def test_temporal_pooling_on_vectors_and_without_dates():
    pooling = TemporalAttentionPooling(6, d_model=16, heads=2)
    assert pooling(torch.randn(3, 5, 6)).shape == (3, 16)
    encoder = build_encoder(
        ModalitySpec(6, spatial=False, series=True),
        EncoderConfig(kind="mlp", hidden=[12]),
        embed_dim=4,
        temporal=TemporalConfig(d_model=16, heads=2),
    )
    assert encoder(torch.randn(3, 5, 6)).embedding.shape == (3, 4)


def test_reconstruction_head_and_target():
    spec = ModalitySpec(3, series=True)
    encoder = build_encoder(
        spec,
        EncoderConfig(kind="alexnet", small_input=True),
        embed_dim=4,
        temporal=TemporalConfig(d_model=16, heads=2),
        reconstruct=True,
    )
    x = torch.randn(2, 2, 3, 8, 8)
    valid = torch.tensor([[True, False], [True, True]])
    out = encoder(x, valid)
    assert out.reconstruction is not None and out.reconstruction.shape == (2, 3)
    target = encoder.reconstruction_target(x, valid)
    torch.testing.assert_close(target[0], x[0, 0].mean(dim=(-2, -1)))
    torch.testing.assert_close(target[1], x[1].mean(dim=(0, 2, 3)))


def test_wrong_inputs_and_configs_are_refused_with_the_fix():
    encoder = build_encoder(ModalitySpec(4), EncoderConfig(kind="alexnet"), embed_dim=4)
    with pytest.raises(InvalidInputError, match="4-band images"):
        encoder(torch.randn(2, 5, 16, 16))
    with pytest.raises(InvalidInputError, match="per-pixel vectors"):
        build_encoder(ModalitySpec(4), EncoderConfig(kind="mlp"), embed_dim=4)
    with pytest.raises(InvalidInputError, match="kind: mlp"):
        build_encoder(ModalitySpec(4, spatial=False), EncoderConfig(kind="resnet18"), embed_dim=4)
    with pytest.raises(InvalidInputError, match="temporal"):
        build_encoder(ModalitySpec(4, series=True), EncoderConfig(kind="alexnet"), embed_dim=4)
    with pytest.raises(ValueError, match="unknown encoder kind"):
        EncoderConfig(kind="vgg")
    with pytest.raises(InvalidInputError, match="timm"):
        build_encoder(ModalitySpec(4), EncoderConfig(kind="timm:no_such_net"), embed_dim=4)


def test_local_weights_load_with_prefixes_and_refuse_what_does_not_fit(tmp_path: Path):
    torch.manual_seed(1)
    source = torchvision_resnet("resnet18", 13)
    # a torchgeo/timm-style file: plain ResNet keys plus a classifier head
    state = {k.removeprefix("model."): v for k, v in source.state_dict().items()}
    state["fc.weight"] = torch.zeros(10, 512)
    plain = tmp_path / "resnet18_s2.pth"
    torch.save(state, plain)
    # a Lightning-style checkpoint with a "backbone." prefix under "state_dict"
    lightning_style = tmp_path / "task.ckpt"
    torch.save({"state_dict": {f"backbone.{k}": v for k, v in state.items()}}, lightning_style)
    x = torch.randn(2, 13, 32, 32)
    source.eval()
    for path in (plain, lightning_style):
        config = EncoderConfig(kind="resnet18", weights=path)
        encoder = build_encoder(ModalitySpec(13), config, embed_dim=8).eval()
        torch.testing.assert_close(encoder.features(x), source(x))
    with pytest.raises(InvalidInputError, match="bands"):
        build_encoder(ModalitySpec(4), EncoderConfig(kind="resnet18", weights=plain), embed_dim=8)
    with pytest.raises(InvalidInputError, match="lack"):
        load_backbone_weights(torchvision_resnet("resnet50", 13), plain)
    with pytest.raises(DataFileNotFoundError, match="never downloads"):
        load_backbone_weights(source, tmp_path / "missing.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CorruptDataError):
        load_backbone_weights(source, garbage)
