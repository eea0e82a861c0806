"""The scenario document: what the guest plays, defined once for host and guest (a contract).

The host model (``schedlab_scenario``) resolves a scenario against the VM's topology and
writes this plain map (:func:`validate` accepts exactly what it writes); it travels in the
run document's ``scenario`` field (:mod:`guest.rundoc`) over the bulk port after SYS_RDY,
and the guest checks it again here. Every field is present; CPU lists are concrete::

    {
        "version": 1,
        "name": "cpuset_apply",             # [a-z0-9_]{1,64}
        "duration_s": 2.0,                  # what Hold "frac" and "loop" count against
        "seed": 7,                          # random_subset affinities draw from it
        "topology": {"cpus": 4, "usable": [0, 1, 2], "llcs": [[0, 1], [2, 3]],
                     "nodes": [[0, 1, 2, 3]]},
        "backdrop": {"cgroups": [CG, ...], "ops": [OP, ...]},   # lives through every step
        "steps": [{"name": "apply", "cgroups": [CG, ...], "ops": [OP, ...], "hold": HOLD}],
    }
    CG   = {"name": "cg_0/sub", "cpuset": [0, 1] | None, "workers": 2,
            "work": {"type": "spin", "params": {...}},        # guest.scenario.work
            "policy": {"class": "normal", "priority": 0}, "nice": 0,
            "affinity": {"kind": "inherit", "cpus": [], "count": 0},
            "mempolicy": {"mode": "default", "nodes": [], "flags": []}}
    HOLD = {"kind": "frac", "value": 0.5} | {"kind": "fixed", "value": 1.5}  # seconds
         | {"kind": "loop", "value": 0.1}   # re-apply the ops every 0.1 s until duration_s
    OP   = {"op": "add_cgroup", "cgroup": CG} | {"op": "remove_cgroup", "cgroup": NAME}
         | {"op": "set_cpuset", "cgroup": NAME, "cpus": [..]} | {"op": "clear_cpuset", "cgroup": NAME}
         | {"op": "swap_cpusets", "a": NAME, "b": NAME}
         | {"op": "spawn", "cgroup": NAME | "", "workers", "work", "policy", "nice",
            "affinity", "mempolicy"}                       # "": outside any cgroup of ours
         | {"op": "stop_cgroup", "cgroup": NAME} | {"op": "set_affinity", "cgroup", "affinity"}
         | {"op": "move_all_tasks", "from": NAME, "to": NAME}
         | {"op": "run_payload", "name", "path", "args": [..], "cgroup": NAME | ""}
         | {"op": "wait_payload", "name", "timeout_s"} | {"op": "kill_payload", "name"}

Order and lifetime (the runner's contract): the backdrop's ops run, then its cgroups are
created and their workers started; then each step runs its ops, creates its cgroups, starts
what it spawned and holds. What a step creates (cgroups, spawned workers, payloads) ends
with it; the backdrop's ends with the run. Workers are told the step index through
:mod:`guest.scenario.stepclock` and report one segment per step.

Checks beyond types and bounds: cgroup names are ``/``-separated paths of
``[A-Za-z0-9_-]`` (a parent exists before its child), every reference names a cgroup or
payload alive at that point, a backdrop worker is never moved into a step's cgroup (it would
be stranded when the step ends), a loop step only has ops that can repeat, CPU and node
indexes lie in the topology, a cgroup's worker count is a multiple of its work type's group.
Every error is a :class:`~guest.spec.SpecError` naming the field (``scenario.steps[1].ops[0].cgroup``).
"""

from __future__ import annotations

import math
import os

from guest.scenario.work import check_work, group_size
from guest.spec import MAX_TOTAL_WORKERS, SpecError

TYPE_CHECKING = False  # typing costs ~0.4 s of guest startup under TCG
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any, NoReturn

__all__ = (
    "AFFINITY_KINDS",
    "HOLD_KINDS",
    "MAX_CGROUPS",
    "MAX_CPUS",
    "MAX_DEPTH",
    "MAX_DURATION_S",
    "MAX_OPS",
    "MAX_STEPS",
    "MAX_WORKERS",
    "MEMPOLICY_FLAGS",
    "MEMPOLICY_MODES",
    "OPS",
    "POLICY_CLASSES",
    "VERSION",
    "check_cgroup_name",
    "check_lifetimes",
    "planned_s",
    "validate",
)

VERSION = 1
MAX_STEPS = 64
MAX_OPS = 64  # per step, and for the backdrop
MAX_CGROUPS = 64  # defined per step, and for the backdrop
MAX_LIVE_CGROUPS = 128
MAX_DEPTH = 4  # cgroup path components
MAX_COMPONENT = 32
MAX_WORKERS = 256  # per cgroup definition or spawn
MAX_CPUS = 64  # schedlab_shared.topology.MAX_CPUS (a test holds them equal)
MAX_DURATION_S = 3600.0
MAX_PAYLOAD_ARGS = 64
MAX_ARG = 4096
MAX_PATH = 1024

POLICY_CLASSES = ("normal", "batch", "idle", "fifo", "rr", "ext")
AFFINITY_KINDS = ("inherit", "random_subset", "llc_aligned", "cross_cgroup", "single_cpu", "exact")
MEMPOLICY_MODES = (
    "default",
    "preferred",
    "bind",
    "interleave",
    "local",
    "preferred_many",
    "weighted_interleave",
)
MEMPOLICY_FLAGS = ("static_nodes", "relative_nodes", "numa_balancing")
HOLD_KINDS = ("frac", "fixed", "loop")
#: Op name -> its fields besides ``op``.
OPS: dict[str, tuple[str, ...]] = {
    "add_cgroup": ("cgroup",),
    "remove_cgroup": ("cgroup",),
    "set_cpuset": ("cgroup", "cpus"),
    "clear_cpuset": ("cgroup",),
    "swap_cpusets": ("a", "b"),
    "spawn": ("cgroup", "workers", "work", "policy", "nice", "affinity", "mempolicy"),
    "stop_cgroup": ("cgroup",),
    "set_affinity": ("cgroup", "affinity"),
    "move_all_tasks": ("from", "to"),
    "run_payload": ("name", "path", "args", "cgroup"),
    "wait_payload": ("name", "timeout_s"),
    "kill_payload": ("name",),
}
#: Ops a loop step may repeat (the others would fail on their second pass).
LOOP_OPS = frozenset(
    {"set_cpuset", "clear_cpuset", "swap_cpusets", "spawn", "stop_cgroup", "set_affinity"}
    | {"move_all_tasks"}
)
_CG_FIELDS = ("name", "cpuset", "workers", "work", "policy", "nice", "affinity", "mempolicy")
_TOP = ("version", "name", "duration_s", "seed", "topology", "backdrop", "steps")
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")
_COMPONENT_CHARS = _NAME_CHARS | frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ-")
_PAYLOAD_CHARS = _COMPONENT_CHARS | frozenset(".")


# -- scalar checks -----------------------------------------------------------------------


def _fail(path: str, msg: str) -> NoReturn:
    raise SpecError(path, msg)


def _map(v: Any, path: str, fields: Iterable[str]) -> dict[str, Any]:
    """A map with exactly ``fields`` (the host writes every field)."""
    fields = tuple(fields)
    if not isinstance(v, dict):
        _fail(path, f"is {type(v).__name__}, want a map")
    for key in v:
        if key not in fields:
            _fail(f"{path}.{str(key)[:40]}", f"unknown field (known: {', '.join(fields)})")
    for key in fields:
        if key not in v:
            _fail(f"{path}.{key}", "missing (required)")
    return v


def _int(v: Any, path: str, lo: int, hi: int) -> int:
    if not isinstance(v, int) or isinstance(v, bool):
        _fail(path, f"is {type(v).__name__}, want an integer")
    if not lo <= v <= hi:
        _fail(path, f"{v} is outside [{lo}, {hi}]")
    return v


def _num(v: Any, path: str, lo: float, hi: float, low_open: bool = False) -> float:
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        _fail(path, f"is {type(v).__name__}, want a number")
    v = float(v)
    if not math.isfinite(v) or v > hi or (v <= lo if low_open else v < lo):
        _fail(path, f"{v!r} is outside {'(' if low_open else '['}{lo}, {hi}]")
    return v


def _text(v: Any, path: str, chars: frozenset[str], limit: int, empty: bool = False) -> str:
    if not isinstance(v, str):
        _fail(path, f"is {type(v).__name__}, want a string")
    if not v and not empty:
        _fail(path, "is empty")
    if len(v) > limit:
        _fail(path, f"{len(v)} characters > {limit}")
    bad = sorted(set(v) - chars)
    if bad:
        _fail(path, f"{v[:40]!r} has characters outside the allowed set: {bad[:8]!r}")
    return v


def _list(v: Any, path: str, limit: int) -> list[Any]:
    if not isinstance(v, list):
        _fail(path, f"is {type(v).__name__}, want a list")
    if len(v) > limit:
        _fail(path, f"{len(v)} entries > {limit}")
    return v


def _cpus(v: Any, path: str, nr_cpus: int, empty: bool = False) -> list[int]:
    """A sorted list of distinct CPU indexes below ``nr_cpus``."""
    cpus = _list(v, path, MAX_CPUS)
    for i, c in enumerate(cpus):
        _int(c, f"{path}[{i}]", 0, nr_cpus - 1)
    if cpus != sorted(set(cpus)):
        _fail(path, "is not a sorted list of distinct CPUs")
    if not cpus and not empty:
        _fail(path, "is empty")
    return list(cpus)


def check_cgroup_name(v: Any, path: str) -> str:
    """A cgroup path below the run's base: 1..4 components of ``[A-Za-z0-9_-]{1,32}``."""
    if not isinstance(v, str) or not v:
        _fail(path, "want a cgroup name such as 'cg_0' or 'cg_0/sub'")
    parts = v.split("/")
    if len(parts) > MAX_DEPTH:
        _fail(path, f"{v[:80]!r} is nested deeper than {MAX_DEPTH}")
    for part in parts:
        _text(part, path, _COMPONENT_CHARS, MAX_COMPONENT)
    return v


# -- structures --------------------------------------------------------------------------


def _topology(v: Any) -> dict[str, Any]:
    path = "scenario.topology"
    m = _map(v, path, ("cpus", "usable", "llcs", "nodes"))
    n = _int(m["cpus"], f"{path}.cpus", 1, MAX_CPUS)
    out: dict[str, Any] = {"cpus": n, "usable": _cpus(m["usable"], f"{path}.usable", n)}
    for key in ("llcs", "nodes"):
        groups = _list(m[key], f"{path}.{key}", MAX_CPUS)
        out[key] = [_cpus(g, f"{path}.{key}[{i}]", n) for i, g in enumerate(groups)]
        flat = sorted(c for g in out[key] for c in g)
        if flat != list(range(n)):
            _fail(f"{path}.{key}", f"does not partition the {n} CPUs")
    return out


def _policy(v: Any, path: str) -> dict[str, Any]:
    m = _map(v, path, ("class", "priority"))
    cls = m["class"]
    if cls not in POLICY_CLASSES:
        _fail(f"{path}.class", f"{str(cls)[:20]!r} is not one of {', '.join(POLICY_CLASSES)}")
    rt = cls in ("fifo", "rr")
    prio = _int(m["priority"], f"{path}.priority", 1 if rt else 0, 99 if rt else 0)
    return {"class": cls, "priority": prio}


def _affinity(v: Any, path: str, topo: dict[str, Any]) -> dict[str, Any]:
    m = _map(v, path, ("kind", "cpus", "count"))
    kind = m["kind"]
    if kind not in AFFINITY_KINDS:
        _fail(f"{path}.kind", f"{str(kind)[:20]!r} is not one of {', '.join(AFFINITY_KINDS)}")
    cpus = _cpus(m["cpus"], f"{path}.cpus", topo["cpus"], empty=kind != "exact")
    if kind != "exact" and cpus:
        _fail(f"{path}.cpus", f"only an exact affinity lists CPUs, not {kind}")
    count = _int(m["count"], f"{path}.count", 0, MAX_CPUS)
    if (kind == "random_subset") != (count > 0):
        _fail(f"{path}.count", "random_subset takes a count >= 1; other kinds take 0")
    return {"kind": kind, "cpus": cpus, "count": count}


def _mempolicy(v: Any, path: str, topo: dict[str, Any]) -> dict[str, Any]:
    m = _map(v, path, ("mode", "nodes", "flags"))
    mode = m["mode"]
    if mode not in MEMPOLICY_MODES:
        _fail(f"{path}.mode", f"{str(mode)[:20]!r} is not one of {', '.join(MEMPOLICY_MODES)}")
    nodes = _cpus(m["nodes"], f"{path}.nodes", len(topo["nodes"]), empty=True)
    if mode in ("default", "local") and nodes:
        _fail(f"{path}.nodes", f"mode {mode} takes no nodes")
    if mode == "preferred" and len(nodes) > 1:
        _fail(f"{path}.nodes", "mode preferred takes one node")
    if mode not in ("default", "local", "preferred") and not nodes:
        _fail(f"{path}.nodes", f"mode {mode} needs at least one node")
    flags = _list(m["flags"], f"{path}.flags", len(MEMPOLICY_FLAGS))
    for i, f in enumerate(flags):
        if f not in MEMPOLICY_FLAGS:
            _fail(
                f"{path}.flags[{i}]", f"{str(f)[:20]!r} is not one of {', '.join(MEMPOLICY_FLAGS)}"
            )
    if len(set(flags)) != len(flags) or {"static_nodes", "relative_nodes"} <= set(flags):
        _fail(f"{path}.flags", "repeats a flag or combines static_nodes with relative_nodes")
    if flags and mode in ("default", "local"):
        _fail(f"{path}.flags", f"mode {mode} takes no flags")
    return {"mode": mode, "nodes": nodes, "flags": list(flags)}


def _workers_of(m: dict[str, Any], path: str, topo: dict[str, Any], lo: int) -> dict[str, Any]:
    """The fields a cgroup definition and a spawn share: workers and how they run."""
    workers = _int(m["workers"], f"{path}.workers", lo, MAX_WORKERS)
    w = _map(m["work"], f"{path}.work", ("type", "params"))
    name, params = check_work(w["type"], w["params"], f"{path}.work")
    group = group_size(name, params)
    if workers % group:
        _fail(f"{path}.workers", f"{workers} is not a multiple of {name}'s group of {group}")
    policy = _policy(m["policy"], f"{path}.policy")
    nice = _int(m["nice"], f"{path}.nice", -20, 19)
    if nice and policy["class"] in ("fifo", "rr"):
        _fail(f"{path}.nice", f"a {policy['class']} policy takes no nice value")
    return {
        "workers": workers,
        "work": {"type": name, "params": params},
        "policy": policy,
        "nice": nice,
        "affinity": _affinity(m["affinity"], f"{path}.affinity", topo),
        "mempolicy": _mempolicy(m["mempolicy"], f"{path}.mempolicy", topo),
    }


def _cgroup(v: Any, path: str, topo: dict[str, Any]) -> dict[str, Any]:
    m = _map(v, path, _CG_FIELDS)
    out: dict[str, Any] = {"name": check_cgroup_name(m["name"], f"{path}.name")}
    cpuset = m["cpuset"]
    out["cpuset"] = None if cpuset is None else _cpus(cpuset, f"{path}.cpuset", topo["cpus"])
    out.update(_workers_of(m, path, topo, 0))
    return out


def _hold(v: Any, path: str) -> dict[str, Any]:
    m = _map(v, path, ("kind", "value"))
    kind = m["kind"]
    if kind not in HOLD_KINDS:
        _fail(f"{path}.kind", f"{str(kind)[:20]!r} is not one of {', '.join(HOLD_KINDS)}")
    if kind == "frac":
        return {"kind": kind, "value": _num(m["value"], f"{path}.value", 0.0, 100.0, True)}
    low_open = kind == "loop"  # a zero interval would spin
    return {"kind": kind, "value": _num(m["value"], f"{path}.value", 0.0, MAX_DURATION_S, low_open)}


def _op(v: Any, path: str, topo: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(v, dict) or v.get("op") not in OPS:
        name = v.get("op") if isinstance(v, dict) else v
        _fail(f"{path}.op", f"{str(name)[:30]!r} is not one of {', '.join(OPS)}")
    op = v["op"]
    m = _map(v, path, ("op",) + OPS[op])
    out: dict[str, Any] = {"op": op}
    if op == "add_cgroup":
        out["cgroup"] = _cgroup(m["cgroup"], f"{path}.cgroup", topo)
    elif op == "spawn":
        cg = m["cgroup"]
        out["cgroup"] = "" if cg == "" else check_cgroup_name(cg, f"{path}.cgroup")
        out.update(_workers_of(m, path, topo, 1))
    elif op in ("run_payload", "wait_payload", "kill_payload"):
        out["name"] = _text(m["name"], f"{path}.name", _PAYLOAD_CHARS, 64)
        if op == "run_payload":
            out.update(_payload(m, path))
        elif op == "wait_payload":
            out["timeout_s"] = _num(m["timeout_s"], f"{path}.timeout_s", 0.0, MAX_DURATION_S, True)
    else:
        for key in OPS[op]:
            if key == "cpus":
                out[key] = _cpus(m[key], f"{path}.cpus", topo["cpus"])
            elif key == "affinity":
                out[key] = _affinity(m[key], f"{path}.affinity", topo)
            else:
                out[key] = check_cgroup_name(m[key], f"{path}.{key}")
    return out


def _payload(m: dict[str, Any], path: str) -> dict[str, Any]:
    prog = m["path"]
    if (
        not isinstance(prog, str)
        or not prog.startswith("/")
        or len(prog) > MAX_PATH
        or os.path.normpath(prog) != prog
        or not prog.isprintable()
    ):
        _fail(f"{path}.path", f"{str(prog)[:80]!r} is not a normalized absolute path")
    args = _list(m["args"], f"{path}.args", MAX_PAYLOAD_ARGS)
    for i, a in enumerate(args):
        if not isinstance(a, str) or len(a) > MAX_ARG or "\0" in a:
            _fail(f"{path}.args[{i}]", f"want a string of at most {MAX_ARG} characters, no NUL")
    cg = m["cgroup"]
    return {
        "path": prog,
        "args": list(args),
        "cgroup": "" if cg == "" else check_cgroup_name(cg, f"{path}.cgroup"),
    }


def _scope(v: Any, path: str, topo: dict[str, Any], step: bool) -> dict[str, Any]:
    fields = ("name", "cgroups", "ops", "hold") if step else ("cgroups", "ops")
    m = _map(v, path, fields)
    out: dict[str, Any] = {}
    if step:
        out["name"] = _text(m["name"], f"{path}.name", _COMPONENT_CHARS, 64, empty=True)
    cgs = _list(m["cgroups"], f"{path}.cgroups", MAX_CGROUPS)
    out["cgroups"] = [_cgroup(c, f"{path}.cgroups[{i}]", topo) for i, c in enumerate(cgs)]
    ops = _list(m["ops"], f"{path}.ops", MAX_OPS)
    out["ops"] = [_op(o, f"{path}.ops[{i}]", topo) for i, o in enumerate(ops)]
    if step:
        out["hold"] = _hold(m["hold"], f"{path}.hold")
    return out


# -- lifetimes: what each reference names ------------------------------------------------


class _Live:
    """Cgroups and payloads alive as the runner walks the document, and who owns them."""

    def __init__(self) -> None:
        self.cgroups: dict[str, str] = {}  # name -> "backdrop" | "step"
        self.payloads: dict[str, str] = {}
        self.workers = 0

    def add(self, cg: dict[str, Any], path: str, owner: str) -> None:
        name = cg["name"]
        if name in self.cgroups:
            _fail(f"{path}.name", f"cgroup {name!r} exists already")
        parent = name.rpartition("/")[0]
        if parent and parent not in self.cgroups:
            _fail(f"{path}.name", f"parent cgroup {parent!r} of {name!r} does not exist yet")
        if len(self.cgroups) >= MAX_LIVE_CGROUPS:
            _fail(f"{path}.name", f"more than {MAX_LIVE_CGROUPS} cgroups at once")
        self.cgroups[name] = owner
        self.spawn(cg["workers"], path)

    def spawn(self, n: int, path: str) -> None:
        self.workers += n
        if self.workers > MAX_TOTAL_WORKERS:
            _fail(
                f"{path}.workers", f"{self.workers} workers in the scenario > {MAX_TOTAL_WORKERS}"
            )

    def need(self, name: str, path: str) -> str:
        if name not in self.cgroups:
            _fail(path, f"cgroup {name!r} does not exist at this point")
        return self.cgroups[name]

    def remove(self, name: str) -> None:
        for n in [n for n in self.cgroups if n == name or n.startswith(name + "/")]:
            del self.cgroups[n]

    def end_step(self) -> None:
        for n in [n for n, owner in self.cgroups.items() if owner == "step"]:
            del self.cgroups[n]
        for n in [n for n, owner in self.payloads.items() if owner == "step"]:
            del self.payloads[n]


def _walk_ops(ops: list[dict[str, Any]], path: str, live: _Live, owner: str) -> None:
    for i, op in enumerate(ops):
        p, kind = f"{path}.ops[{i}]", op["op"]
        if kind == "add_cgroup":
            live.add(op["cgroup"], f"{p}.cgroup", owner)
        elif kind == "remove_cgroup":
            live.need(op["cgroup"], f"{p}.cgroup")
            live.remove(op["cgroup"])
        elif kind == "swap_cpusets":
            live.need(op["a"], f"{p}.a")
            live.need(op["b"], f"{p}.b")
        elif kind == "move_all_tasks":
            src = live.need(op["from"], f"{p}.from")
            dst = live.need(op["to"], f"{p}.to")
            if op["from"] == op["to"]:
                _fail(f"{p}.to", f"moves {op['to']!r} into itself")
            if src == "backdrop" and dst == "step":
                _fail(
                    f"{p}.to",
                    f"moves backdrop cgroup {op['from']!r}'s tasks into {op['to']!r}, which "
                    "ends with the step; declare it in the backdrop too",
                )
        elif kind in ("run_payload", "wait_payload", "kill_payload"):
            _walk_payload(op, p, live, owner)
        else:
            if op["cgroup"]:  # spawn "" runs outside our cgroups
                live.need(op["cgroup"], f"{p}.cgroup")
            if kind == "spawn":
                live.spawn(op["workers"], p)


def _walk_payload(op: dict[str, Any], p: str, live: _Live, owner: str) -> None:
    name = op["name"]
    if op["op"] == "run_payload":
        if name in live.payloads:
            _fail(f"{p}.name", f"payload {name!r} is running already")
        if op["cgroup"]:
            live.need(op["cgroup"], f"{p}.cgroup")
        live.payloads[name] = owner
    elif name not in live.payloads:
        _fail(f"{p}.name", f"payload {name!r} is not running at this point")
    else:
        del live.payloads[name]


def check_lifetimes(doc: dict[str, Any]) -> None:
    """Check what each op names is alive at that point (see the module docstring).

    Reads only op kinds, names, worker counts and hold kinds, so the host model runs it on
    a scenario before any topology is known.
    """
    live = _Live()
    bd = doc["backdrop"]
    _walk_ops(bd["ops"], "scenario.backdrop", live, "backdrop")
    for i, cg in enumerate(bd["cgroups"]):
        live.add(cg, f"scenario.backdrop.cgroups[{i}]", "backdrop")
    for s, step in enumerate(doc["steps"]):
        path = f"scenario.steps[{s}]"
        if step["hold"]["kind"] == "loop":
            for i, op in enumerate(step["ops"]):
                if op["op"] not in LOOP_OPS:
                    _fail(f"{path}.ops[{i}].op", f"{op['op']} cannot repeat in a loop step")
        _walk_ops(step["ops"], path, live, "step")
        for i, cg in enumerate(step["cgroups"]):
            live.add(cg, f"{path}.cgroups[{i}]", "step")
        live.end_step()


def validate(doc: Any) -> dict[str, Any]:
    """Check a scenario document; return it normalised (plain lists and maps).

    :raises SpecError: the first bad field, named by its path under ``scenario``.
    """
    m = _map(doc, "scenario", _TOP)
    if m["version"] != VERSION or isinstance(m["version"], bool):
        _fail("scenario.version", f"{str(m['version'])[:20]!r} is not {VERSION}")
    topo = _topology(m["topology"])
    out = {
        "version": VERSION,
        "name": _text(m["name"], "scenario.name", _NAME_CHARS, 64),
        "duration_s": _num(m["duration_s"], "scenario.duration_s", 0.0, MAX_DURATION_S, True),
        "seed": _int(m["seed"], "scenario.seed", 0, (1 << 32) - 1),
        "topology": topo,
        "backdrop": _scope(m["backdrop"], "scenario.backdrop", topo, step=False),
    }
    steps = _list(m["steps"], "scenario.steps", MAX_STEPS)
    if not steps:
        _fail("scenario.steps", "is empty (a scenario has at least one step)")
    out["steps"] = [_scope(s, f"scenario.steps[{i}]", topo, step=True) for i, s in enumerate(steps)]
    check_lifetimes(out)
    return out


def planned_s(plan: dict[str, Any]) -> float:
    """Seconds the steps of a validated ``plan`` hold in all (a loop step takes what is left
    of ``duration_s``); setup time is not included."""
    d, elapsed = plan["duration_s"], 0.0
    for s in plan["steps"]:
        kind, value = s["hold"]["kind"], s["hold"]["value"]
        elapsed += (
            value * d if kind == "frac" else value if kind == "fixed" else max(0.0, d - elapsed)
        )
    return elapsed
