"""Deterministic synthetic COGs and STAC items for the cube benchmark (``bench_cube.py``).

Three sensors, laid out like the real products:

- Sentinel-2-like: uint16, one single-band COG per band (``red``, ``green``, ``blue``, ``nir``),
  10 m, 1024 px blocks, deflate, DN = reflectance * 10000 + 1000 (processing baseline >= 04.00),
  no-data 0, several overlapping tiles per date in one UTM zone, each tile with a no-data corner
  (a swath edge); items shaped like Earth Search ``sentinel-2-c1-l2a`` (``raster:bands`` scale
  0.0001, offset -0.1).
- Sentinel-1-like: float32 linear gamma0 ``vv`` / ``vh`` COGs in EPSG:4326 (0.0001 degree
  pixels), 512 px blocks, no-data -32768, two adjacent frames per date; items shaped like
  Planetary Computer ``sentinel-1-rtc``.
- Orthophoto: 1 m, 4-band uint8 RGBN pixel-interleaved COGs (like NAIP's ``image`` asset), 512 px
  blocks, deflate, 2 x 2 adjacent tiles, colour interpretation R, G, B, undefined (no alpha).

Pixel values are a function of the WORLD position (and date and band), seeded, smooth plus
hash noise, so overlapping tiles agree exactly and every loader has only one right answer.
"""

from __future__ import annotations

import datetime as dt
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: Cube CRS (WGS 84 / UTM 33N) and the centre of the benchmark area in it (lat ~45.1, lon 15).
UTM = "EPSG:32633"
CENTRE = (500_000.0, 5_000_000.0)
S2_BANDS = ("blue", "green", "red", "nir")
S2_WAVELENGTH_UM = {"blue": 0.49, "green": 0.56, "red": 0.665, "nir": 0.842}
S1_BANDS = ("vv", "vh")
S1_NODATA = -32768.0
DEG = 0.0001  # S1 pixel size in degrees


@dataclass(frozen=True)
class Layout:
    """Sizes of one benchmark scene.

    Attributes:
        side_m: Edge of the base output area in metres (a square centred on ``CENTRE``).
        s2_tile_px: Edge of one Sentinel-2 tile in 10 m pixels.
        s2_dates: Number of Sentinel-2 dates (each a 2 x 2 mosaic of tiles).
        s1_dates: Number of Sentinel-1 dates (each two frames in EPSG:4326).
        ortho_dates: Number of orthophoto dates (each 2 x 2 tiles).
    """

    side_m: int
    s2_tile_px: int
    s2_dates: int = 3
    s1_dates: int = 2
    ortho_dates: int = 1

    @property
    def cover_m(self) -> float:
        """Half-edge of the square the sources must cover: the 4x area plus a margin."""
        return self.side_m + 400.0

    def aoi(self, scale: int = 1) -> tuple[float, float, float, float]:
        """Output bounds (left, bottom, right, top) in UTM: the base area, ``scale`` x per side."""
        half = self.side_m * scale / 2
        return (CENTRE[0] - half, CENTRE[1] - half, CENTRE[0] + half, CENTRE[1] + half)


def _rng_params(seed: int, n: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.0, 2 * math.pi, size=n)


def _hash_noise(ix: np.ndarray, iy: np.ndarray, salt: int, modulo: int) -> np.ndarray:
    """Integer noise in [0, modulo) from integer world pixel indexes (no state, no RNG)."""
    h = (ix.astype(np.uint64) * np.uint64(73856093)) ^ (iy.astype(np.uint64) * np.uint64(19349663))
    h ^= np.uint64(salt * 83492791 + 12345)
    h *= np.uint64(0x9E3779B97F4A7C15)
    h ^= h >> np.uint64(29)
    return (h % np.uint64(modulo)).astype(np.int64)


def _field(x: np.ndarray, y: np.ndarray, phases: np.ndarray, k: int) -> np.ndarray:
    """A smooth field in [-1, 1] of world coordinates (metres or scaled degrees)."""
    p = phases[4 * k : 4 * k + 4]
    out: np.ndarray = 0.5 * np.sin(x / 1700.0 + p[0]) * np.cos(y / 2300.0 + p[1])
    out += 0.5 * np.sin((x + y) / 450.0 + p[2]) * np.cos((x - y) / 830.0 + p[3])
    return out


def s2_values(ix: np.ndarray, iy: np.ndarray, band: int, date: int, seed: int) -> np.ndarray:
    """DN of Sentinel-2-like pixels at world 10 m pixel indexes; always in [1001, 7000]."""
    phases = _rng_params(seed, 64)
    f = _field(ix * 10.0, iy * 10.0, phases, band)
    refl = 0.05 + 0.12 * (1 + f) + 0.04 * date + 0.1 * band
    dn = refl * 10000 + 1000 + _hash_noise(ix, iy, 100 * date + band, 200)
    out: np.ndarray = np.clip(dn, 1001, 7000).astype(np.uint16)
    return out


def s1_values(ilon: np.ndarray, ilat: np.ndarray, band: int, date: int, seed: int) -> np.ndarray:
    """Linear gamma0 at world 0.0001 degree pixel indexes (float32)."""
    phases = _rng_params(seed + 1, 64)
    f = _field(ilon * 8.0, ilat * 11.0, phases, band + 2 * date)
    db = -12.0 - 6.0 * band + 4.0 * f + 0.01 * _hash_noise(ilon, ilat, 7 + 10 * date + band, 300)
    out: np.ndarray = np.power(10.0, db / 10.0).astype(np.float32)
    return out


def ortho_values(ix: np.ndarray, iy: np.ndarray, band: int, seed: int) -> np.ndarray:
    """uint8 RGBN values at world 1 m pixel indexes; always in [1, 255] (0 is the cube no-data)."""
    phases = _rng_params(seed + 2, 64)
    f = _field(ix * 1.0, iy * 1.0, phases, band)
    v = 110 + 70 * f + (_hash_noise(ix, iy, 1000 + band, 24) - 12)
    out: np.ndarray = np.clip(v, 1, 255).astype(np.uint8)
    return out


def _write_cog(
    path: Path,
    *,
    shape: tuple[int, int],
    count: int,
    dtype: str,
    crs: str,
    transform: Any,
    nodata: float | None,
    block: int,
    fill: Callable[[int, int, int, int], np.ndarray],
    colorinterp: list[Any] | None = None,
) -> None:
    """Write a COG strip by strip: a tiled GTiff first, then GDAL's COG driver (deflate)."""
    import rasterio
    import rasterio.shutil
    from rasterio.windows import Window

    tmp = path.with_suffix(".tmp.tif")
    height, width = shape
    profile = {
        "driver": "GTiff",
        "height": height,
        "width": width,
        "count": count,
        "dtype": dtype,
        "crs": crs,
        "transform": transform,
        "nodata": nodata,
        "tiled": True,
        "blockxsize": block,
        "blockysize": block,
        "interleave": "pixel",
    }
    with rasterio.open(tmp, "w", **profile) as dst:
        if colorinterp is not None:
            dst.colorinterp = colorinterp
        for row in range(0, height, block):
            rows = min(block, height - row)
            dst.write(fill(row, rows, 0, width), window=Window(0, row, width, rows))
    with rasterio.Env(GDAL_NUM_THREADS="ALL_CPUS"):
        rasterio.shutil.copy(
            tmp,
            path,
            driver="COG",
            compress="DEFLATE",
            blocksize=block,
            overviews="NONE",
            num_threads="ALL_CPUS",
            bigtiff="IF_SAFER",
        )
    tmp.unlink()
    aux = tmp.with_name(tmp.name + ".aux.xml")
    if aux.exists():
        aux.unlink()


def _footprint(bounds: tuple[float, float, float, float], crs: str) -> dict[str, Any]:
    from odc.geo.geom import box

    return box(*bounds, crs).to_crs("EPSG:4326").json  # type: ignore[no-any-return]


def _item(
    item_id: str,
    *,
    collection: str,
    when: dt.datetime,
    bounds: tuple[float, float, float, float],
    crs: str,
    properties: dict[str, Any],
    assets: dict[str, dict[str, Any]],
) -> Any:
    import pystac
    from odc.geo.geom import Geometry

    geometry = _footprint(bounds, crs)
    bbox = list(Geometry(geometry, "EPSG:4326").boundingbox)
    item = pystac.Item(
        id=item_id,
        geometry=geometry,
        bbox=bbox,
        datetime=when,
        properties=dict(properties),
        collection=collection,
        stac_extensions=[
            "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
            "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
            "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
        ],
    )
    item.properties["proj:code"] = crs
    for key, asset in assets.items():
        extra = {k: v for k, v in asset.items() if k not in ("href", "title")}
        item.add_asset(
            key,
            pystac.Asset(
                href=asset["href"],
                title=asset.get("title"),
                roles=["data"],
                media_type="image/tiff; application=geotiff; profile=cloud-optimized",
                extra_fields=extra,
            ),
        )
    return item


def _proj_fields(transform: Any, shape: tuple[int, int]) -> dict[str, Any]:
    return {"proj:shape": list(shape), "proj:transform": list(transform)[:6]}


def make_scene(
    root: Path, layout: Layout, *, seed: int = 42, log: Callable[[str], None] = print
) -> dict[str, list[dict[str, Any]]]:
    """Write every COG of ``layout`` under ``root``; return STAC item dicts per modality."""
    from affine import Affine

    root.mkdir(parents=True, exist_ok=True)
    cx, cy = CENTRE
    cover = layout.cover_m
    items: dict[str, list[dict[str, Any]]] = {"s2": [], "s1": [], "ortho": []}
    base_day = dt.datetime(2024, 6, 3, 10, 5, 31, tzinfo=dt.UTC)

    # --- Sentinel-2: 2 x 2 overlapping tiles per date covering [c - cover, c + cover].
    n = layout.s2_tile_px
    span = 2 * cover / 10.0  # pixels to cover
    overlap = max(0, int(2 * n - span))
    if 2 * n - overlap < span:
        raise ValueError(f"s2_tile_px={n} is too small to cover {2 * cover} m with 2 x 2 tiles")
    left0 = math.floor((cx - cover) / 10.0) * 10.0
    top0 = math.ceil((cy + cover) / 10.0) * 10.0
    for d in range(layout.s2_dates):
        when = base_day + dt.timedelta(days=5 * d)
        for ty in range(2):
            for tx in range(2):
                left = left0 + tx * (n - overlap) * 10.0
                top = top0 - ty * (n - overlap) * 10.0
                transform = Affine(10.0, 0.0, left, 0.0, -10.0, top)
                tile = f"33TVL{ty}{tx}"
                item_id = f"S2B_{tile}_{when:%Y%m%d}_0_L2A"
                folder = root / "s2" / item_id
                folder.mkdir(parents=True, exist_ok=True)
                ix0 = round(left / 10.0)
                iy0 = round(top / 10.0)
                corner = (tx + 2 * ty + d) % 4  # each tile loses a different corner (swath edge)
                assets = {}
                for b, band in enumerate(S2_BANDS):

                    def fill(
                        row: int,
                        rows: int,
                        col: int,
                        cols: int,
                        *,
                        b: int = b,
                        d: int = d,
                        ix0: int = ix0,
                        iy0: int = iy0,
                        corner: int = corner,
                    ) -> np.ndarray:
                        jy, jx = np.mgrid[row : row + rows, col : col + cols]
                        values = s2_values(ix0 + jx, iy0 - jy, b, d, seed)
                        u = jx if corner in (0, 2) else (n - 1 - jx)
                        v = jy if corner in (0, 1) else (n - 1 - jy)
                        values[u + v < n // 4] = 0
                        return values[np.newaxis]

                    path = folder / f"{band.upper()}.tif"
                    _write_cog(
                        path,
                        shape=(n, n),
                        count=1,
                        dtype="uint16",
                        crs=UTM,
                        transform=transform,
                        nodata=0,
                        block=1024,
                        fill=fill,
                    )
                    assets[band] = {
                        "href": str(path),
                        "title": band,
                        "raster:bands": [
                            {
                                "nodata": 0,
                                "data_type": "uint16",
                                "scale": 0.0001,
                                "offset": -0.1,
                                "spatial_resolution": 10,
                            }
                        ],
                        "eo:bands": [
                            {
                                "name": band,
                                "common_name": band,
                                "center_wavelength": S2_WAVELENGTH_UM[band],
                            }
                        ],
                        **_proj_fields(transform, (n, n)),
                    }
                bounds = (left, top - n * 10.0, left + n * 10.0, top)
                item = _item(
                    item_id,
                    collection="sentinel-2-c1-l2a",
                    when=when,
                    bounds=bounds,
                    crs=UTM,
                    properties={
                        "platform": "sentinel-2b",
                        "constellation": "sentinel-2",
                        "eo:cloud_cover": float(5 * (tx + 2 * ty)),
                        "s2:processing_baseline": "05.10",
                        "s2:product_type": "S2MSI2A",
                    },
                    assets=assets,
                )
                items["s2"].append(item.to_dict())
        log(f"  s2 date {d + 1}/{layout.s2_dates}: 4 tiles x {len(S2_BANDS)} bands of {n} px")

    # --- Sentinel-1: two frames per date in EPSG:4326, north and south of the centre latitude.
    from pyproj import Transformer

    to_ll = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True)
    lons, lats = to_ll.transform(
        [cx - cover, cx + cover, cx - cover, cx + cover],
        [cy - cover, cy - cover, cy + cover, cy + cover],
    )
    ilon0 = math.floor(min(lons) / DEG) - 20
    ilon1 = math.ceil(max(lons) / DEG) + 20
    ilat0 = math.floor(min(lats) / DEG) - 20
    ilat1 = math.ceil(max(lats) / DEG) + 20
    ilat_mid = (ilat0 + ilat1) // 2
    width = ilon1 - ilon0
    for d in range(layout.s1_dates):
        when = base_day + dt.timedelta(days=6 * d, hours=-5)
        for f, (top_i, bottom_i) in enumerate(((ilat1, ilat_mid), (ilat_mid, ilat0))):
            height = top_i - bottom_i
            transform = Affine(DEG, 0.0, ilon0 * DEG, 0.0, -DEG, top_i * DEG)
            item_id = f"S1A_IW_GRDH_1SDV_{when:%Y%m%dT%H%M%S}_F{f}_rtc"
            folder = root / "s1" / item_id
            folder.mkdir(parents=True, exist_ok=True)
            assets = {}
            for b, band in enumerate(S1_BANDS):

                def fill_s1(
                    row: int,
                    rows: int,
                    col: int,
                    cols: int,
                    *,
                    b: int = b,
                    d: int = d,
                    top_i: int = top_i,
                ) -> np.ndarray:
                    jy, jx = np.mgrid[row : row + rows, col : col + cols]
                    return s1_values(ilon0 + jx, top_i - jy, b, d, seed)[np.newaxis]

                path = folder / f"{band}.tif"
                _write_cog(
                    path,
                    shape=(height, width),
                    count=1,
                    dtype="float32",
                    crs="EPSG:4326",
                    transform=transform,
                    nodata=S1_NODATA,
                    block=512,
                    fill=fill_s1,
                )
                assets[band] = {
                    "href": str(path),
                    "title": band,
                    "raster:bands": [
                        {"nodata": S1_NODATA, "data_type": "float32", "spatial_resolution": 10}
                    ],
                    **_proj_fields(transform, (height, width)),
                }
            bounds = (ilon0 * DEG, bottom_i * DEG, ilon1 * DEG, top_i * DEG)
            item = _item(
                item_id,
                collection="sentinel-1-rtc",
                when=when,
                bounds=bounds,
                crs="EPSG:4326",
                properties={
                    "platform": "SENTINEL-1A",
                    "constellation": "Sentinel-1",
                    "sar:polarizations": ["VV", "VH"],
                    "sar:instrument_mode": "IW",
                },
                assets=assets,
            )
            items["s1"].append(item.to_dict())
        log(f"  s1 date {d + 1}/{layout.s1_dates}: 2 frames x 2 bands of {width} x {height} px")

    # --- Orthophoto: 2 x 2 adjacent 1 m tiles, 4-band uint8, pixel interleaved.
    import rasterio.enums

    half = int(cover)
    ci = [
        rasterio.enums.ColorInterp.red,
        rasterio.enums.ColorInterp.green,
        rasterio.enums.ColorInterp.blue,
        rasterio.enums.ColorInterp.undefined,
    ]
    for d in range(layout.ortho_dates):
        when = base_day + dt.timedelta(days=2 + 30 * d, hours=7)
        for ty in range(2):
            for tx in range(2):
                left = cx - half + tx * half
                top = cy + half - ty * half
                transform = Affine(1.0, 0.0, left, 0.0, -1.0, top)
                item_id = f"m_4501503_{'ns'[ty]}{'we'[tx]}_33_060_{when:%Y%m%d}"
                folder = root / "ortho"
                folder.mkdir(parents=True, exist_ok=True)
                ix0, iy0 = int(left), int(top)

                def fill_o(
                    row: int, rows: int, col: int, cols: int, *, ix0: int = ix0, iy0: int = iy0
                ) -> np.ndarray:
                    jy, jx = np.mgrid[row : row + rows, col : col + cols]
                    return np.stack([ortho_values(ix0 + jx, iy0 - jy, b, seed) for b in range(4)])

                path = folder / f"{item_id}.tif"
                _write_cog(
                    path,
                    shape=(half, half),
                    count=4,
                    dtype="uint8",
                    crs=UTM,
                    transform=transform,
                    nodata=None,
                    block=512,
                    fill=fill_o,
                    colorinterp=ci,
                )
                bounds = (left, top - half, left + half, top)
                item = _item(
                    item_id,
                    collection="naip",
                    when=when,
                    bounds=bounds,
                    crs=UTM,
                    properties={"naip:state": "xx", "gsd": 1.0},
                    assets={
                        "image": {
                            "href": str(path),
                            "title": "RGBN",
                            "eo:bands": [
                                {"name": n_, "common_name": c_}
                                for n_, c_ in (
                                    ("Red", "red"),
                                    ("Green", "green"),
                                    ("Blue", "blue"),
                                    ("NIR", "nir"),
                                )
                            ],
                            "raster:bands": [{"data_type": "uint8", "spatial_resolution": 1}] * 4,
                            **_proj_fields(transform, (half, half)),
                        }
                    },
                )
                items["ortho"].append(item.to_dict())
        log(f"  ortho date {d + 1}/{layout.ortho_dates}: 4 tiles of {half} px, RGBN uint8")
    return items


def remove_tree(path: Path) -> None:
    """Delete a scene folder (ignores a missing one)."""
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)


def disk_usage(path: Path) -> int:
    """Bytes used by files under ``path``."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


__all__ = [
    "Layout",
    "make_scene",
    "ortho_values",
    "s1_values",
    "s2_values",
    "UTM",
    "CENTRE",
    "S1_NODATA",
    "S2_BANDS",
    "S1_BANDS",
    "disk_usage",
    "remove_tree",
]
