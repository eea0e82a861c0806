import doctest

import msgpack
import pytest

from guest import verdict as verdict_mod
from guest.verdict import WorkerReport, judge, spread


def rep(cg, pid, units=100, cpu=1_000_000, gap=1.0, error=""):
    return WorkerReport(cg, pid, units, cpu, gap, error)


EXPECTED = {"cg0": 2, "cg1": 2}


def good_reports():
    return [rep("cg0", 1), rep("cg0", 2, cpu=900_000), rep("cg1", 3), rep("cg1", 4)]


def test_all_good_passes_with_numbers():
    v = judge(good_reports(), EXPECTED, fairness=0.35)
    assert v.passed
    assert v.reason == "all checks passed"
    assert [c.name for c in v.checks] == ["complete", "starvation", "fairness"]
    cg0 = v.cgroups[0]
    assert (cg0.cgroup, cg0.min_cpu_ns, cg0.max_cpu_ns) == ("cg0", 900_000, 1_000_000)
    assert cg0.spread == pytest.approx(0.1)
    assert cg0.work_units == 200


def test_starved_worker_fails():
    reports = good_reports()
    reports[3] = rep("cg1", 4, units=0, cpu=0)
    v = judge(reports, EXPECTED, fairness=1.0)
    assert not v.passed
    assert "starvation" in v.reason and "cg1/pid 4" in v.reason
    assert [c.passed for c in v.checks] == [True, False, True]


def test_unfair_cgroup_fails_and_reports_spread():
    reports = good_reports()
    reports[1] = rep("cg0", 2, cpu=500_000)
    v = judge(reports, EXPECTED, fairness=0.35)
    assert not v.passed
    assert "cg0 spread 0.500" in v.reason
    assert "cg1" not in v.reason
    assert judge(reports, EXPECTED, fairness=0.5).passed  # the limit is inclusive


def test_missing_and_erroring_workers_fail_complete():
    reports = good_reports()[:3]
    v = judge(reports, EXPECTED, fairness=1.0)
    assert not v.passed and "cg1: 1 of 2 workers did not report" in v.reason
    reports = good_reports()
    reports[0] = rep("cg0", 1, error="cgroup move failed")
    v = judge(reports, EXPECTED, fairness=1.0)
    assert not v.passed and "cg0/pid 1: cgroup move failed" in v.reason


def test_max_gap_check_only_when_enabled():
    reports = good_reports()
    reports[2] = rep("cg1", 3, gap=900.0)
    assert judge(reports, EXPECTED, fairness=1.0).passed
    v = judge(reports, EXPECTED, fairness=1.0, max_gap_ms=500)
    assert not v.passed and "cg1/pid 3 900.0 ms" in v.reason


def test_spread_edge_cases():
    assert spread([]) == 0.0
    assert spread([0, 0]) == 0.0
    assert spread([7]) == 0.0
    assert spread([1, 4]) == 0.75


def test_payload_is_msgpack_clean():
    payload = judge(good_reports(), EXPECTED, fairness=0.35).as_payload()
    assert msgpack.unpackb(msgpack.packb(payload)) == payload
    assert payload["passed"] is True and len(payload["verdicts"]) == 3


def test_report_from_map_checks_types():
    m = rep("cg0", 5).as_map()
    assert WorkerReport.from_map(m) == rep("cg0", 5)
    assert WorkerReport.from_map({**m, "max_gap_ms": 3}).max_gap_ms == 3.0
    for bad in ({**m, "pid": "5"}, {**m, "work_units": True}, {"cgroup": "cg0"}, [1]):
        with pytest.raises(ValueError):
            WorkerReport.from_map(bad)


def test_doctest():
    assert doctest.testmod(verdict_mod).failed == 0
