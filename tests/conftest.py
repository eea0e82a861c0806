"""Suite-wide collection rule for tier 4.

Tests marked ``in_testbed`` need /dev/kvm with hardware semantics. On a host whose /dev/kvm
is hardware-backed they run directly. Elsewhere (this project's dev and CI machines) they
are deselected from the host run, with a line saying so, and run inside the KVM-in-TCG
testbed by ``tests/integration/testbed/test_in_testbed_suite.py``, which fails if any of
them fails or skips there. Inside the testbed, SCHEDLAB_IN_TESTBED=1 is set.
"""

from __future__ import annotations

import os

import pytest

_deselected: list[str] = []


def _hardware_kvm() -> bool:
    from vmm_proc.probe import probe

    return probe().kind == "hardware"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    marked = [i for i in items if i.get_closest_marker("in_testbed")]
    if not marked or os.environ.get("SCHEDLAB_IN_TESTBED") == "1" or _hardware_kvm():
        return
    config.hook.pytest_deselected(items=marked)
    items[:] = [i for i in items if not i.get_closest_marker("in_testbed")]
    _deselected.extend(i.nodeid for i in marked)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ANN001
    if _deselected:
        terminalreporter.write_line(
            f"{len(_deselected)} in_testbed tests were not run on this host's /dev/kvm (not "
            "hardware-backed); test_in_testbed_suite runs them inside the testbed"
        )
