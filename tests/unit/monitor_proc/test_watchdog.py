"""The watchdog override written into synthetic guest memory, in both kernel layouts."""

import struct

import pytest

from monitor_proc.helpers.ext import scx_sched_sample
from monitor_proc.watchdog import WatchdogOverride
from schedlab_shared.monitor_schema import check_watchdog
from tests.unit.monitor_proc.scx_guest import (
    INTERVAL_SYM,
    JIFFIES_SYM,
    TIMESTAMP_SYM,
    WATCHDOG_SYM,
    ScxGuest,
    writable_program,
)


def _u64(g: ScxGuest, va: int) -> int:
    return struct.unpack("<Q", g.mem.read(g.pa(va), 8))[0]


def test_72_per_scheduler_timeout_interval_and_checked_in_guard():
    g = ScxGuest(layout="7.2")
    prog = writable_program(g)
    wd = WatchdogOverride(1.0, 250)
    out = wd.step(prog, scx_sched_sample(prog), 480.0)
    obs = check_watchdog(out["watchdog"])
    assert obs == {
        "requested_s": 1.0,
        "requested": 250,
        "hz": 250,
        "target": "scx_sched.watchdog_timeout",
        "previous": 1250,
        "interval": 125,
        "read_back": 250,
        "read_back_s": 1.0,
        "at_ms": 480.0,
    }
    assert _u64(g, g.sch + 168) == 250 and _u64(g, INTERVAL_SYM) == 125
    assert scx_sched_sample(prog)["watchdog_timeout"] == 250
    # until the kernel's watchdog runs again, its timestamp is kept at "now"
    g.write_u64(JIFFIES_SYM, 100_200)
    assert wd.step(prog, scx_sched_sample(prog), 580.0) == {}  # applied once only
    assert _u64(g, TIMESTAMP_SYM) == 100_200
    g.write_u64(TIMESTAMP_SYM, 100_260)  # the watchdog ran
    g.write_u64(JIFFIES_SYM, 100_300)
    wd.step(prog, scx_sched_sample(prog), 680.0)
    assert _u64(g, TIMESTAMP_SYM) == 100_260 and wd._guard is None


def test_guard_gives_up_after_one_old_interval_plus_the_new_timeout():
    g = ScxGuest(layout="7.2")
    prog = writable_program(g)
    wd = WatchdogOverride(1.0, 250)
    wd.step(prog, scx_sched_sample(prog), 0.0)
    g.write_u64(JIFFIES_SYM, 99_900 + 625 + 250 + 1)  # a starved watchdog
    wd.step(prog, scx_sched_sample(prog), 100.0)
    assert wd._guard is None and _u64(g, TIMESTAMP_SYM) == 99_900


def test_older_kernels_write_the_static_timeout():
    g = ScxGuest(layout="6.16")
    prog = writable_program(g)
    obs = WatchdogOverride(2.0, 100).step(prog, scx_sched_sample(prog), 0.0)["watchdog"]
    assert (obs["target"], obs["read_back"], "interval" in obs) == (
        "scx_watchdog_timeout",
        200,
        False,
    )
    assert _u64(g, WATCHDOG_SYM) == 200


def test_each_attach_gets_the_override_and_a_read_only_mapping_says_why_not():
    g = ScxGuest(layout="7.2")
    wd = WatchdogOverride(1.0, 250)
    ro = g.program()
    assert "read-only" in wd.step(ro, scx_sched_sample(ro), 0.0)["watchdog"]["error"]
    assert wd.step(ro, None, 100.0) == {}  # detached
    prog = writable_program(g)
    again = wd.step(prog, scx_sched_sample(prog), 200.0)["watchdog"]
    assert again["read_back"] == 250


def test_bad_requests_are_refused():
    with pytest.raises(ValueError):
        WatchdogOverride(0.0, 250)
