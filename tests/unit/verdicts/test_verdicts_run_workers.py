"""verdicts.run_workers: the host's verdict from a scenario's RESULT facts (step records)."""

from __future__ import annotations

from guest.scenario import record
from tests.framework.worker_reports import T0, S, seg
from verdicts.run_workers import cpusets_by_step, reports_from_steps, workers_section
from verdicts.worker_limits import WorkerLimits


def _rec(pid: int, cgroup: str, step: int, cohort: str = "", **figures) -> dict:  # noqa: ANN003
    """A step record's segment: the runner's envelope around a work type's figures."""
    f = seg(step=step, start=T0 + step * 2 * S, **figures)
    env = {
        "pid": pid,
        "cgroup": cgroup,
        "cohort": cohort or cgroup,
        "work": "spin",
        "step": step,
        "phase": "hold",
        "start_ns": f["start_ns"],
        "end_ns": f["end_ns"],
        "wall_ns": f["wall_time_ns"],
        "cpu_ns": f["cpu_time_ns"],
        "run_delay_ns": 1,
        "timeslices": 2,
        "migrations": 0,
        "nvcsw": 0,
        "nivcsw": 0,
    }
    figs = {k: v for k, v in f.items() if k not in env and k not in ("cpu_time_ns",)}
    out = {**env, **figs, "max_gap_ms": f["max_gap_ns"] / 1e6}
    record.check_segment(out)
    return out


def _op(op: str, target: str, ok: bool = True, **detail) -> dict:  # noqa: ANN003
    return {
        "op": op,
        "target": target,
        "started_ns": T0,
        "effect_ns": T0,
        "ok": ok,
        "error": "" if ok else "busy",
        "detail": detail,
    }


def _result(steps_workers, steps_ops, exempt=()):  # noqa: ANN001, ANN202
    pids = sorted({(w["pid"], w["cgroup"]) for ws in steps_workers for w in ws})
    steps = [
        {
            "index": i,
            "name": f"s{i}",
            "hold": {"kind": "frac", "value": 0.5},
            "started_ns": T0 + i * 2 * S,
            "hold_ns": T0 + i * 2 * S,
            "ended_ns": T0 + (i + 1) * 2 * S,
            "loops": 0,
            "ops": ops,
            "workers": ws,
            "dropped": 0,
        }
        for i, (ws, ops) in enumerate(zip(steps_workers, steps_ops, strict=True))
    ]
    return {
        "passed": True,
        "reason": "workload complete",
        "scenario": "cpuset_apply",
        "workers": [
            {
                "cgroup": cg,
                "pid": p,
                "work_units": 1,
                "cpu_time_ns": 1,
                "max_gap_ms": 5.0,
                "error": "",
            }
            for p, cg in pids
        ],
        "steps": steps,
        "backdrop": {"started_ns": T0, "ops": [], "dropped": 0},
        "fairness_exempt": list(exempt),
    }


def _cpuset_apply(cpus_seen=(0,)):  # noqa: ANN001, ANN202
    """Step 0: cg_0 and cg_1 over all CPUs; step 1: cg_0 on cpu 0, cg_1 on cpu 1."""
    s0 = [_rec(1, "cg_0", 0), _rec(2, "cg_0", 0), _rec(3, "cg_1", 0), _rec(4, "cg_1", 0)]
    s1 = [
        _rec(1, "cg_0", 1, cpus=list(cpus_seen)),
        _rec(2, "cg_0", 1, cpus=[0]),
        _rec(3, "cg_1", 1, cpus=[1]),
        _rec(4, "cg_1", 1, cpus=[1]),
    ]
    ops0 = [_op("add_cgroup", "cg_0", setup=True), _op("add_cgroup", "cg_1", setup=True)]
    ops1 = [
        _op("set_cpuset", "cg_0", cpus=[0], effective=[0]),
        _op("set_cpuset", "cg_1", cpus=[1], effective=[1]),
    ]
    return [s0, s1], [ops0, ops1]


def test_segments_come_from_the_step_records() -> None:
    ws, ops = _cpuset_apply()
    reports = reports_from_steps(_result(ws, ops))
    r1 = next(r for r in reports if r["pid"] == 1)
    assert [s["step"] for s in r1["segments"]] == [0, 1] and r1["kind"] == "spin"
    s = r1["segments"][1]
    assert s["cpu_time_ns"] == ws[1][0]["cpu_ns"] and s["wall_time_ns"] == ws[1][0]["wall_ns"]
    assert s["cohort"] == "cg_0" and s["cpus"] == [0]


def test_a_scenario_passes_with_its_ops_judged() -> None:
    ws, ops = _cpuset_apply()
    v = workers_section(_result(ws, ops), WorkerLimits(isolation=True))
    assert v["passed"], v["reason"]
    assert [c["name"] for c in v["verdicts"]][:3] == ["complete", "ops", "starvation"]
    assert {(c["cgroup"], c["step"]) for c in v["cgroups"]} == {
        ("cg_0", 0),
        ("cg_0", 1),
        ("cg_1", 0),
        ("cg_1", 1),
    }


def test_a_failed_op_fails_the_scenario() -> None:
    ws, ops = _cpuset_apply()
    ops[1][1] = _op("set_cpuset", "cg_1", ok=False)
    v = workers_section(_result(ws, ops))
    c = next(c for c in v["verdicts"] if c["name"] == "ops")
    assert not v["passed"] and c["evidence"] == ["set_cpuset cg_1: busy"]


def test_cpusets_per_step_include_both_sides_of_a_change() -> None:
    ws, ops = _cpuset_apply()
    sets = cpusets_by_step(_result(ws, ops))
    # step 0: no cpuset yet; step 1: changed from all CPUs (none) to {0}: not judged
    assert sets["cg_0"].step_cpus == {0: None, 1: None}
    ops.append([])
    ws.append([_rec(1, "cg_0", 2, cpus=[1])])
    sets = cpusets_by_step(_result(ws, ops))
    assert sets["cg_0"].step_cpus[2] == frozenset({0})


def test_an_isolation_escape_in_a_settled_step_is_caught() -> None:
    ws, ops = _cpuset_apply()
    ops.append([])
    ws.append([_rec(1, "cg_0", 2, cpus=[0, 1]), _rec(2, "cg_0", 2, cpus=[0])])
    v = workers_section(_result(ws, ops), WorkerLimits(isolation=True))
    iso = next(c for c in v["verdicts"] if c["name"] == "isolation")
    assert not iso["passed"]
    assert iso["evidence"] == ["cg_0/pid 1 step 2: ran on cpu 1 outside its cpuset 0"]


def test_an_exempt_cohort_is_not_compared() -> None:
    ws, ops = _cpuset_apply()
    ws[1][1] = _rec(2, "cg_0", 1, cpus=[0], cpu_share=0.05)
    assert not workers_section(_result(ws, ops))["passed"]
    v = workers_section(_result(ws, ops, exempt=["cg_0"]))
    assert v["passed"], v["reason"]


def test_without_a_result_nothing_passes() -> None:
    v = workers_section(None)
    assert not v["passed"] and "no worker reports" in v["reason"]


def test_setup_phases_are_neither_compared_nor_held_to_a_cpuset() -> None:
    ws, ops = _cpuset_apply()
    ops.append([])
    settled = [_rec(1, "cg_0", 2, cpus=[0]), _rec(2, "cg_0", 2, cpus=[0])]
    moving = [
        dict(_rec(1, "cg_0", 2, cpus=[0, 1], cpu_share=0.05), phase="setup"),
        dict(_rec(2, "cg_0", 2, cpus=[1]), phase="setup"),
    ]
    ws.append(settled + moving)
    v = workers_section(_result(ws, ops), WorkerLimits(isolation=True))
    assert v["passed"], v["reason"]
    assert [c["workers"] for c in v["cgroups"] if c["step"] == 2] == [2]
