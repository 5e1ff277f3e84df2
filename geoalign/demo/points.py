"""A generated aerial LiDAR point cloud (LAZ) over the demo's ground.

Pulses fall uniformly at random (seeded) at ``density`` per square metre. The first return hits
the surface (terrain, roof or crown) with 5 cm noise; in trees 40% of the pulses also return
from the ground (last return). Classes are ASPRS: 2 ground, 5 high vegetation, 6 building,
9 water. Intensity follows the real near-infrared reflectance (roofs and water dark). The file
is LAS 1.4 point format 6, LAZ-compressed (lazrs), with the CRS (EPSG:32618) in a WKT VLR.
"""

from __future__ import annotations

from pathlib import Path

import laspy
import numpy as np
import pyproj
from scipy import ndimage

from geoalign.demo.ground import BUILDING, WATER, Ground

GROUND_CLASS, VEGETATION_CLASS, BUILDING_CLASS, WATER_CLASS = 2, 5, 6, 9


def write_point_cloud(
    ground: Ground, path: Path, rng: np.random.Generator, *, density: float = 1.0
) -> tuple[Path, int]:
    """Write the point cloud; return its path and number of points."""
    area = ground.area
    n = ground.classes.shape[0]
    pulses = int(area.size * area.size * density)
    x = rng.uniform(0.0, area.size, pulses)
    y = rng.uniform(0.0, area.size, pulses)
    col = np.minimum(x.astype(np.int64), n - 1)
    row = np.minimum((area.size - y).astype(np.int64), n - 1)
    terrain = ground.dtm[row, col]
    height = ground.objects[row, col]
    cls1 = ground.classes[row, col]
    first_class = np.full(pulses, GROUND_CLASS, np.uint8)
    first_class[height > 2.0] = VEGETATION_CLASS
    first_class[cls1 == BUILDING] = BUILDING_CLASS
    first_class[cls1 == WATER] = WATER_CLASS
    in_tree = first_class == VEGETATION_CLASS
    second = in_tree & (rng.uniform(size=pulses) < 0.4)
    nir = ndimage.zoom(ground.reflectance["B08"], n // ground.reflectance["B08"].shape[0], order=1)
    brightness = np.where(first_class == BUILDING_CLASS, 0.1, nir[row, col])
    intensity = np.clip(brightness * 60_000, 50, 65_000)
    count = pulses + int(second.sum())
    las = laspy.LasData(laspy.LasHeader(point_format=6, version="1.4"))
    las.header.scales = np.array([0.01, 0.01, 0.01])
    las.header.offsets = np.array([area.x0, area.y0, 0.0])
    las.header.add_crs(pyproj.CRS.from_epsg(area.epsg))
    las.x = np.concatenate([area.x0 + x, area.x0 + x[second]])
    las.y = np.concatenate([area.y0 + y, area.y0 + y[second]])
    noise = rng.normal(0.0, 0.05, count)
    las.z = np.concatenate([terrain + height, terrain[second]]) + noise
    las.intensity = np.concatenate([intensity, 0.5 * intensity[second]]).astype(np.uint16)
    las.classification = np.concatenate(
        [first_class, np.full(int(second.sum()), GROUND_CLASS, np.uint8)]
    )
    returns = np.where(in_tree & second, 2, 1).astype(np.uint8)
    las.return_number = np.concatenate(
        [np.ones(pulses, np.uint8), np.full(int(second.sum()), 2, np.uint8)]
    )
    las.number_of_returns = np.concatenate([returns, np.full(int(second.sum()), 2, np.uint8)])
    las.write(str(path))
    return path, count
