"""Guest tests run work types on the host: the native work loops must be importable."""

import pytest

from tests.framework.native import native_on_path


@pytest.fixture(autouse=True, scope="session")
def _native_work_loops() -> None:
    native_on_path()
