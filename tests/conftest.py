"""Shared pytest fixtures: real third-party data and a real local STAC API (pgstac)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.data import require_data, running_in_ci
from support.stac_api import LocalStacApi, PostgresNotFoundError, find_postgres


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real third-party data folder, read in place (never copied). Skips, or fails under CI."""
    return require_data()


@pytest.fixture(scope="session")
def stac_api() -> Iterator[LocalStacApi]:
    """A real STAC API (stac-fastapi-pgstac over a private PostgreSQL + PostGIS) on 127.0.0.1.

    One server for the whole session. It starts empty; tests load what they need with
    ``load_collections``/``load_items`` (upserts), and a module that needs an exact result set
    calls ``reset()`` first, in a module-scoped fixture. Skips where PostgreSQL/PostGIS is not
    installed, but fails under CI (``CI=true``).
    """
    try:
        install = find_postgres()
    except PostgresNotFoundError as err:
        if running_in_ci():
            pytest.fail(f"{err} -- under CI=true the STAC API tests must not be skipped")
        pytest.skip(str(err))
    with LocalStacApi(install=install) as api:
        yield api


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that uses real data with ``realdata`` so ``-m 'not realdata'`` works."""
    del config
    for item in items:
        if "shared_data" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.realdata)
