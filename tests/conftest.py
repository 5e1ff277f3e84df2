"""Shared pytest fixtures: real third-party data and a real local STAC API (pgstac)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.data import require_data


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real third-party data folder, read in place (never copied). Skips, or fails under CI."""
    return require_data()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that uses real data with ``realdata`` so ``-m 'not realdata'`` works."""
    del config
    for item in items:
        if "shared_data" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.realdata)
