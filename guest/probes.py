"""Runs that must fail a verdict: the tier-3 proofs that the host's checks catch their failure.

A run spec whose scenario is one of :data:`PROBES` plays the steady scenario changed so one
check must fail on any correct scheduler (EEVDF included), with its evidence:

``verdict-unfair``
    ``cg_0`` holds two spinners started together, one at nice 0 and one at nice 10 (the
    backdrop's and a spawn's): fairness within the cgroup must fail.
``verdict-starve``
    two spinners pinned to CPU 0, and a SCHED_IDLE worker pinned there too whose work unit
    is too large to finish in the run: starvation must fail.
``verdict-escape``
    ``cg_0`` confined to CPU 0 (its cpuset) holds a spinner and a custom worker
    (:func:`escape_callable`) that leaves the cgroup for the root one and pins itself to a
    CPU outside the cpuset, still reported as ``cg_0``'s: isolation must fail, naming it
    and the CPU (the host's check is on when the test turns it on: ``isolation``).
``work-tour``
    every work type of :data:`guest.workspec.TABLE` but ``payload`` (its program travels
    with the run's inputs) in a step of its own (:data:`TOUR_HOLD_S` each), as many workers
    as its group; ``custom`` twice, as a callable (:func:`tour_callable`) and a command.
"""

from __future__ import annotations

from guest.spec import PROBES

TYPE_CHECKING = False  # typing costs ~0.4 s of guest startup under TCG
if TYPE_CHECKING:
    from typing import Any

__all__ = ("PROBES", "probe_plan")

_BIG_UNIT = 1 << 24  # workspec's largest spin unit: seconds of CPU under TCG


def _pinned(cpu: int) -> dict[str, Any]:
    return {"kind": "exact", "cpus": [cpu], "count": 0}


def _spawn(cg: dict[str, Any], **change: Any) -> dict[str, Any]:
    keep = ("workers", "work", "policy", "nice", "affinity", "mempolicy")
    return {"op": "spawn", "cgroup": cg["name"], **{k: cg[k] for k in keep}, **change}


#: The nice of the unfair probe's second worker: ~10 % of a CPU beside a nice-0 one, enough
#: under TCG for its worker to start (nice 19's 1.5 % did not within a 2 s run) and do work.
UNFAIR_NICE = 10
#: Seconds each step of the work tour holds.
TOUR_HOLD_S = 0.4
_TOUR_PARAMS: dict[str, dict[str, Any]] = {
    "bursty": {"burst_ms": 20.0, "sleep_ms": 20.0},
    "sequence": {"phases": "spin:30,sleep:20,yield:20,io:20"},
    "futex_fan_out": {"fan_out": 2},
    "fan_out_compute": {"fan_out": 2, "cache_kb": 32, "ops": 1},
    "page_fault_churn": {"region_kb": 512, "touches": 64},
}
#: Steps that need longer under TCG: a group's round waits for its slowest member to start,
#: a command for its interpreter (a worker's start costs 100-400 ms of CPU there), a callable
#: for its import (0.4 s left a loaded 2-core CI host's callable worker without one unit).
_TOUR_SLOW_S = {"futex_fan_out": 1.5, "fan_out_compute": 1.5, "command": 2.0, "callable": 1.5}
_TOUR_EXTRA = (
    ("custom", {"callable": "guest.probes:tour_callable"}),
    ("custom", {"command": "/usr/bin/python3 -S -c \"print('ops: 5')\"", "metrics": "kv"}),
)  # fmt: skip


def tour_callable(ctl: Any) -> dict[str, Any]:
    """The tour's custom callable: count units until stopped, report how many loops ran."""
    loops = 0
    while ctl.running():
        ctl.lib.sl_spin_iters(1024)
        ctl.unit()
        loops += 1
    return {"loops": loops}


def escape_callable(ctl: Any) -> dict[str, Any]:
    """The escape probe's worker: into the root cgroup (out of its cpuset), onto the highest
    CPU its cpuset did not allow, then count units until stopped."""
    import os

    from guest.cgroups import CGROUP_ROOT

    before = os.sched_getaffinity(0)
    with open(f"{CGROUP_ROOT}/cgroup.procs", "w") as f:
        f.write(str(os.getpid()))
    outside = sorted(os.sched_getaffinity(0) - before) or sorted(range(os.cpu_count() or 1))
    os.sched_setaffinity(0, {outside[-1]})
    loops = 0
    while ctl.running():
        ctl.lib.sl_spin_iters(1024)
        ctl.unit()
        loops += 1
    return {"loops": loops, "escaped_to": outside[-1]}


def _tour(plan: dict[str, Any]) -> None:
    from guest import workspec

    cg = plan["steps"][0]["cgroups"][0]
    kinds = [(n, _TOUR_PARAMS.get(n, {})) for n in workspec.TABLE if n not in ("custom", "payload")]
    steps = []
    for i, (name, given) in enumerate([*kinds, *_TOUR_EXTRA]):
        params = workspec.with_defaults(name, given)
        work = {"type": name, "params": params}
        size = workspec.group_size(name, params)
        cgroup = dict(cg, name=f"w{i}_{name}", workers=size, work=work)
        key = next((k for k in ("command", "callable") if k in given), name)
        hold = _TOUR_SLOW_S.get(key, TOUR_HOLD_S)
        steps.append({"name": f"{name}_{i}", "cgroups": [cgroup], "ops": [],
                      "hold": {"kind": "fixed", "value": hold}})  # fmt: skip
    plan["steps"] = steps


def probe_plan(name: str, duration_s: float, nr_cpus: int) -> dict[str, Any]:
    """The validated scenario document of probe ``name``.

    :raises ValueError: not a probe.
    """
    from guest import workspec
    from guest.scenario import document
    from guest.scenario.runner import spinners_plan

    if name not in PROBES:
        raise ValueError(f"{name!r} is not one of {', '.join(PROBES)}")
    plan = spinners_plan(2, 2, duration_s, nr_cpus)
    if name == "work-tour":
        plan["name"] = "work_tour"
        _tour(plan)
        return document.validate(plan)
    step = plan["steps"][0]
    cg0 = dict(step["cgroups"][0], workers=1)
    plan["name"] = name.replace("-", "_")
    plan["backdrop"]["cgroups"] = [cg0]
    step["cgroups"] = step["cgroups"][1:]
    if name == "verdict-unfair":
        step["ops"] = [_spawn(cg0, nice=UNFAIR_NICE)]
    elif name == "verdict-escape":
        cg0["cpuset"] = [0]
        custom = {"callable": "guest.probes:escape_callable"}
        work = {"type": "custom", "params": workspec.with_defaults("custom", custom)}
        step["ops"] = [_spawn(cg0, work=work)]
    else:
        cg0.update(workers=2, affinity=_pinned(0))
        idle = {"class": "idle", "priority": 0}
        work = {"type": "spin", "params": {"unit_iters": _BIG_UNIT}}
        step["ops"] = [_spawn(cg0, workers=1, policy=idle, work=work)]
    return document.validate(plan)
