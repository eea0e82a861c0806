"""Fixtures of the results tests: a recorded EEVDF steady run's result document."""

from __future__ import annotations

from typing import Any

import pytest

from tests.framework.recorded_results import load_fixture


@pytest.fixture
def eevdf_doc() -> dict[str, Any]:
    return load_fixture()
