"""``--scheduler`` on the host side, before anything boots: sched_ext, topology, the report."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from orchestrator.runner import SchedChoice, asked_of, resolve_launch
from orchestrator.scheduler.errors import ResolveError
from orchestrator.scheduler.examples import EXAMPLES
from orchestrator.scheduler.resolve import SchedulerLaunch
from schedlab_shared.topology import Topology

WITH = SimpleNamespace(version="7.2.13", config_known=True, has_sched_ext=True)
WITHOUT = SimpleNamespace(version="6.12.57+deb13-cloud-amd64", config_known=True,
                          has_sched_ext=False)  # fmt: skip
UNKNOWN = SimpleNamespace(version="6.0-custom", config_known=False, has_sched_ext=False)
TOPO = Topology.parse("1,1,2,1")


def _fake_resolve(spec, kernel, *, flags, sched_args, progress):  # noqa: ANN001, ANN202
    d = EXAMPLES[spec]
    tail = d.argv_tail(flags, sched_args)
    return SchedulerLaunch(d, "example", (f"/run/schedlab/inputs/scheduler/{spec}", *tail))


def test_no_sched_ext_is_refused_before_anything_is_built():
    calls = []
    with pytest.raises(ResolveError) as err:
        resolve_launch(SchedChoice("scx_simple"), WITHOUT, TOPO, lambda p, d: None,
                       resolve=lambda *a, **k: calls.append(a))  # fmt: skip
    assert "this kernel has no sched_ext (CONFIG_SCHED_CLASS_EXT" in str(err.value)
    assert "6.12.57" in str(err.value) and calls == []
    assert resolve_launch(SchedChoice("eevdf"), WITHOUT, TOPO, lambda p, d: None).is_eevdf
    # A kernel with no known config goes on: the guest finds out (sysfs).
    got = resolve_launch(SchedChoice("scx_simple"), UNKNOWN, TOPO, lambda p, d: None,
                         resolve=_fake_resolve)  # fmt: skip
    assert got.definition.name == "scx_simple"


def test_flags_args_and_the_report_name():
    launch = resolve_launch(SchedChoice("scx_qmap", "-v -s 5000", ("stall-user",)), WITH, TOPO,
                            lambda p, d: None, resolve=_fake_resolve)  # fmt: skip
    assert launch.argv[1:] == ("-t", "20", "-v", "-s", "5000")
    asked = asked_of(launch)
    assert (asked.name, asked.origin, asked.args, asked.ops) == (
        "scx_qmap", "example", ("-t", "20", "-v", "-s", "5000"), "qmap")  # fmt: skip


def test_topology_constraints_and_bad_args_are_one_line():
    with pytest.raises(ResolveError, match="scx_central needs 2.. cpus|scx_central needs >= 2"):
        resolve_launch(SchedChoice("scx_central"), WITH, Topology.parse("1,1,1,1"),
                       lambda p, d: None, resolve=_fake_resolve)  # fmt: skip
    with pytest.raises(ResolveError, match="quote it like a shell would"):
        resolve_launch(SchedChoice("scx_qmap", '-e "1'), WITH, TOPO, lambda p, d: None,
                       resolve=_fake_resolve)  # fmt: skip
