"""The grid family: integer resolution ratios, snapped bounds, round trips (property tests)."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from odc.geo.geom import box

from geoalign.errors import CRSError, InvalidInputError
from geoalign.grid import CubeGrid, common_step, make_grid, resolution_ratio

RESOLUTION_SETS = st.sampled_from(
    [
        {"s2": 10.0, "ortho": 1.0, "hsi": 30.0},
        {"s2": 10.0, "s2_20": 20.0, "s2_60": 60.0},
        {"s2": 10.0, "naip": 0.5, "lidar": 1.0},
        {"a": 0.3, "b": 0.6, "c": 3.0},
        {"a": 20.0, "b": 30.0, "base": 10.0},
    ]
)


def test_ratio_accepts_multiples_and_divisors() -> None:
    assert resolution_ratio(30, 10) == 3
    assert resolution_ratio(1, 10) == Fraction(1, 10)
    assert resolution_ratio(0.3, 0.1) == 3


def test_ratio_refuses_other_values_with_a_suggestion() -> None:
    with pytest.raises(InvalidInputError, match=r"15 is not an integer multiple or divisor.*Use"):
        resolution_ratio(15, 10)


def test_common_step_is_the_lcm() -> None:
    assert common_step([10, 20, 30]) == 60
    assert common_step([0.3, 1.0]) == 3
    assert common_step([0.5, 10]) == 10


@settings(max_examples=60, deadline=None)
@given(
    resolutions=RESOLUTION_SETS,
    lon=st.floats(-170, 170),
    lat=st.floats(-70, 70),
    size=st.floats(0.001, 0.2),
)
def test_every_modality_covers_the_same_ground(
    resolutions: dict[str, float], lon: float, lat: float, size: float
) -> None:
    aoi = box(lon, lat, lon + size, lat + size / 2, "EPSG:4326")
    grid = make_grid(aoi, resolutions=resolutions)
    assert grid.crs.epsg is not None and 32601 <= grid.crs.epsg <= 32760
    footprint = aoi.to_crs(grid.crs)
    for name, res in resolutions.items():
        gb = grid.geobox(name)
        # exact cover of the same bounds, whole pixels, edges on multiples of the resolution
        assert gb.boundingbox.left == pytest.approx(grid.bounds.left)
        assert gb.boundingbox.top == pytest.approx(grid.bounds.top)
        assert gb.shape.x * res == pytest.approx(grid.bounds.right - grid.bounds.left)
        assert gb.shape.y * res == pytest.approx(grid.bounds.top - grid.bounds.bottom)
        assert (gb.boundingbox.left / res) == pytest.approx(round(gb.boundingbox.left / res))
        assert gb.footprint(grid.crs).contains(footprint.buffer(-1e-6 * res))
    # serialisation round trip
    again = CubeGrid.from_dict(grid.to_dict())
    for name in resolutions:
        assert again.geobox(name) == grid.geobox(name)


def test_grid_refuses_geographic_crs() -> None:
    with pytest.raises(CRSError, match="geographic"):
        make_grid(box(10, 50, 10.1, 50.1, "EPSG:4326"), resolutions={"s2": 10}, crs="EPSG:4326")


def test_grid_refuses_bad_ratio_and_unknown_crs() -> None:
    aoi = box(10, 50, 10.1, 50.1, "EPSG:4326")
    with pytest.raises(InvalidInputError, match="not an integer multiple"):
        make_grid(aoi, resolutions={"s2": 10, "odd": 15}, base_resolution=10)
    with pytest.raises(CRSError, match="not a CRS"):
        make_grid(aoi, resolutions={"s2": 10}, crs="EPSG:999999")


def test_feet_crs_grid_uses_feet() -> None:
    aoi = box(-123.08, 44.04, -123.06, 44.06, "EPSG:4326")
    grid = make_grid(aoi, resolutions={"ortho": 1.0}, crs="EPSG:2992")  # Oregon Lambert (ft)
    assert grid.crs.units[0] in ("foot", "US survey foot")
    assert grid.geobox("ortho").resolution.x == 1.0
