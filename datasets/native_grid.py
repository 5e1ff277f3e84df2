"""A torchgeo dataset whose CRS and resolution cannot be changed from outside.

torchgeo 0.8.1's ``IntersectionDataset`` sets the second dataset's ``crs`` and ``res`` to the
first one's, so that every dataset is warped onto one grid on the fly. A cube group is already
aligned and is read as stored, at its native resolution: setting another CRS or resolution is
refused, with the way to combine groups that keeps each resolution (``&``).
"""

from __future__ import annotations

from pyproj import CRS

from geoalign.errors import CRSError, InvalidInputError


class NativeGrid:
    """Mixin for a ``GeoDataset`` read on its own grid: fixed ``crs`` and ``res``.

    The class using it sets ``_crs`` (a pyproj CRS), ``_res`` (``(x, y)`` pixel size) and
    ``name`` (used in messages).
    """

    _crs: CRS
    _res: tuple[float, float]
    name: str

    @property
    def crs(self) -> CRS:
        """The cube CRS; a cube is never reprojected at sampling time."""
        return self._crs

    @crs.setter
    def crs(self, new_crs: CRS) -> None:
        wanted = CRS.from_user_input(new_crs)
        if wanted != self._crs:
            raise CRSError(
                f"{self.name!r} is stored in {self._crs.to_string()} and geoalign does not "
                f"reproject at sampling time (asked for {wanted.to_string()}): build the cube "
                "in the CRS you need, and combine cube datasets with `&`"
            )

    @property
    def res(self) -> tuple[float, float]:
        """Native pixel size ``(x, y)`` in CRS units; samples are never resampled."""
        return self._res

    @res.setter
    def res(self, new_res: float | tuple[float, float]) -> None:
        pair = (new_res, new_res) if isinstance(new_res, int | float) else tuple(new_res)
        if tuple(float(v) for v in pair) != self._res:
            axis = self._crs.axis_info
            units = axis[0].unit_name if axis else "CRS-unit"
            raise InvalidInputError(
                f"{self.name!r} is read at its native {self._res[0]:g} {units} pixels, not "
                f"{pair[0]:g}: combine cube datasets with `&` (each keeps its own resolution) "
                "instead of torchgeo's IntersectionDataset, which forces one"
            )
