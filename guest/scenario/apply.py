"""The ops of a scenario, one method each: what it changes and what it reads back.

Each handler returns the op record's ``detail`` (what took effect) or raises; the runner
(:class:`guest.scenario.runner.Runner`) stamps the times around it. A handler that starts
workers starts them when it is done: an op's workers begin at once, a step's cgroups begin
together.
"""

from __future__ import annotations

import errno
import os
import signal

from guest.scenario.placement import affinity_cpus, apply_policy
from guest.scenario.worker import KIND as WORKER_KIND
from guest.spec import MAX_TOTAL_WORKERS

TYPE_CHECKING = False  # typing costs ~0.4 s of guest startup under TCG
if TYPE_CHECKING:
    from typing import Any

    from guest.scenario.cgroupfs import Cgroups
    from guest.scenario.placement import Rng
    from guest.worker_pool import WorkerPool

__all__ = ("OpError", "Ops", "Tracked")

_OUTPUT_TAIL = 4096  # bytes of a payload's output kept in its op record
_KILL_WAIT_S = 5.0


class OpError(Exception):
    """An op that could not take effect (the message says why)."""


class Tracked:
    """A process the scenario started: a worker (``payload`` None) or a payload's program.

    :param cohort: the definition or op that made it (workers of one cohort start together).
    :param home: its cgroup when it started; ``cgroup`` is where it is now ("" = none of ours).
    :param owner: -1 for the backdrop, else the step that ends it.
    """

    __slots__ = (
        "pid",
        "cohort",
        "home",
        "cgroup",
        "owner",
        "affinity",
        "payload",
        "where",
        "slot",
        "started",
    )

    def __init__(
        self,
        pid: int,
        cohort: str,
        cgroup: str,
        owner: int,
        affinity: dict[str, Any],
        payload: str | None = None,
    ) -> None:
        self.pid, self.cohort, self.home, self.cgroup = pid, cohort, cgroup, cgroup
        self.owner, self.affinity, self.payload = owner, affinity, payload
        self.where: dict[int, str] = {}  # step -> cgroup at that step's end
        self.slot = -1  # its step counter slot (guest.scenario.stepclock), workers only
        self.started = False  # past the start gate


class Ops:
    """The op handlers; mixed into the runner, which owns this state."""

    plan: dict[str, Any]
    cgroups: Cgroups
    pool: WorkerPool
    rng: Rng
    tracked: dict[int, Tracked]
    ended: dict[int, dict[str, Any]]
    live_cgroups: dict[str, list[Any]]  # name -> [owner, configured cpus or None]
    payloads: dict[str, int]
    step_file: str
    work_dir: str
    bound_s: float
    _cohorts: set[str]
    _fairness_exempt: set[str]

    def _wait_ended(self, pids: list[int], timeout_s: float) -> list[int]:
        raise NotImplementedError

    def _stop(self, pids: list[int]) -> None:
        raise NotImplementedError

    def _new_slot(self) -> int:
        raise NotImplementedError

    def start(self) -> None:
        """Start every worker waiting at the gate."""
        self.pool.start()
        for t in self.tracked.values():
            t.started = True

    # -- helpers -------------------------------------------------------------------------

    def alive(self, pid: int) -> bool:
        return pid in self.tracked and pid not in self.ended

    def in_cgroup(self, name: str, below: bool = False, payloads: bool = False) -> list[int]:
        """Live pids in cgroup ``name`` (and the cgroups below it), in spawn order."""
        return [
            t.pid
            for t in self.tracked.values()
            if self.alive(t.pid)
            and (t.payload is None or payloads)
            and (t.cgroup == name or (below and t.cgroup.startswith(name + "/")))
        ]

    def cohort(self, base: str) -> str:
        label, n = base, 1
        while label in self._cohorts:
            n += 1
            label = f"{base}#{n}"
        self._cohorts.add(label)
        return label

    def _base_cpus(self, cgroup: str) -> list[int]:
        """The CPUs an affinity is worked out against: the cgroup's effective usable CPUs."""
        if not cgroup:
            return []
        eff = self.cgroups.effective_cpus(cgroup)
        usable = set(self.plan["topology"]["usable"])
        return [c for c in eff if c in usable] or eff

    def _affinity(
        self, pids: list[int], affinity: dict[str, Any], cgroup: str
    ) -> list[dict[str, Any]]:
        out = []
        base = self._base_cpus(cgroup)
        for index, pid in enumerate(pids):
            cpus = affinity_cpus(affinity, index, base, self.plan["topology"], self.rng)
            if cpus is None:
                continue
            os.sched_setaffinity(pid, cpus)
            out.append({"pid": pid, "cpus": sorted(os.sched_getaffinity(pid))})
        return out

    def spawn(self, spec: dict[str, Any], cgroup: str, owner: int, cohort: str) -> dict[str, Any]:
        """Fork ``spec['workers']`` workers, place them (policy, nice, cgroup, affinity); they
        wait at the start gate until the caller starts them."""
        live = sum(1 for t in self.tracked.values() if t.payload is None and self.alive(t.pid))
        if live + spec["workers"] > MAX_TOTAL_WORKERS:
            raise OpError(
                f"{live} workers alive; {spec['workers']} more would exceed {MAX_TOTAL_WORKERS}"
            )
        args = {
            "cgroup": cgroup,
            "work": spec["work"],
            "mempolicy": spec["mempolicy"],
            "step_file": self.step_file,
            "bound_s": self.bound_s,
        }
        pids = []
        for i in range(spec["workers"]):
            slot = self._new_slot()
            # index: the worker's rank in a grouped type
            pid = self.pool.spawn(WORKER_KIND, dict(args, slot=slot, index=i))
            t = self.tracked[pid] = Tracked(pid, cohort, cgroup, owner, spec["affinity"])
            t.slot = slot
            pids.append(pid)
            apply_policy(pid, spec["policy"], spec["nice"])
            if cgroup:
                self.cgroups.move(cgroup, pid)
        if spec["affinity"]["kind"] not in ("inherit", "exact", "cross_cgroup"):
            self._fairness_exempt.add(cohort)  # its workers run on different CPUs by design
        detail: dict[str, Any] = {"pids": pids, "cohort": cohort}
        placed = self._affinity(pids, spec["affinity"], cgroup)
        if placed:
            detail["affinity"] = placed
        return detail

    def create(self, cg: dict[str, Any], owner: int) -> dict[str, Any]:
        """Make cgroup ``cg['name']``, set its cpuset, spawn its workers (not started)."""
        name = cg["name"]
        self.cgroups.create(name)
        self.live_cgroups[name] = [owner, cg["cpuset"]]
        detail: dict[str, Any] = {}
        if cg["cpuset"] is not None:
            self.cgroups.set_cpus(name, cg["cpuset"])
            detail["effective"] = self.cgroups.effective_cpus(name)
        if cg["workers"]:
            detail.update(self.spawn(cg, name, owner, self.cohort(name)))
        return detail

    # -- the ops -------------------------------------------------------------------------

    def op_add_cgroup(self, op: dict[str, Any], owner: int, where: str) -> dict[str, Any]:
        detail = self.create(op["cgroup"], owner)
        if detail.get("pids"):
            self.start()
        return detail

    def op_remove_cgroup(self, op: dict[str, Any], owner: int, where: str) -> dict[str, Any]:
        name = op["cgroup"]
        pids = self.in_cgroup(name, below=True, payloads=True)
        self._stop(pids)
        err = self.cgroups.remove(name)
        for n in [n for n in self.live_cgroups if n == name or n.startswith(name + "/")]:
            del self.live_cgroups[n]
        if err:
            raise OpError(err)
        return {"pids": pids}

    def op_set_cpuset(self, op: dict[str, Any], owner: int, where: str) -> dict[str, Any]:
        name = op["cgroup"]
        self.cgroups.set_cpus(name, op["cpus"])
        self.live_cgroups[name][1] = list(op["cpus"])
        return {"cpus": op["cpus"], "effective": self.cgroups.effective_cpus(name)}

    def op_clear_cpuset(self, op: dict[str, Any], owner: int, where: str) -> dict[str, Any]:
        name = op["cgroup"]
        self.cgroups.set_cpus(name, None)
        self.live_cgroups[name][1] = None
        return {"effective": self.cgroups.effective_cpus(name)}

    def op_swap_cpusets(self, op: dict[str, Any], owner: int, where: str) -> dict[str, Any]:
        a, b = op["a"], op["b"]
        cpus_a, cpus_b = self.live_cgroups[a][1], self.live_cgroups[b][1]
        # Clear first: a narrowing write could briefly leave both without a CPU in common.
        self.cgroups.set_cpus(a, None)
        self.cgroups.set_cpus(b, cpus_a)
        self.cgroups.set_cpus(a, cpus_b)
        self.live_cgroups[a][1], self.live_cgroups[b][1] = cpus_b, cpus_a
        return {"a": self.cgroups.effective_cpus(a), "b": self.cgroups.effective_cpus(b)}

    def op_spawn(self, op: dict[str, Any], owner: int, where: str) -> dict[str, Any]:
        cgroup = op["cgroup"]
        detail = self.spawn(op, cgroup, owner, self.cohort(f"{cgroup or 'host'}+{where}"))
        self.start()
        return detail

    def op_stop_cgroup(self, op: dict[str, Any], owner: int, where: str) -> dict[str, Any]:
        pids = self.in_cgroup(op["cgroup"])
        self._stop(pids)
        return {"pids": pids}

    def op_set_affinity(self, op: dict[str, Any], owner: int, where: str) -> dict[str, Any]:
        name = op["cgroup"]
        pids = self.in_cgroup(name)
        if op["affinity"]["kind"] != "inherit":
            self._fairness_exempt.update(self.tracked[p].cohort for p in pids)
        return {"pids": pids, "affinity": self._affinity(pids, op["affinity"], name)}

    def op_move_all_tasks(self, op: dict[str, Any], owner: int, where: str) -> dict[str, Any]:
        src, dst = op["from"], op["to"]
        ours = self.in_cgroup(src, payloads=True)
        pids = ours + [p for p in self.cgroups.procs(src) if p not in ours]  # a payload's children
        detail: dict[str, Any] = {}
        if dst and self.cgroups.holds_controllers(dst):
            self.cgroups.make_leaf(dst)  # its children keep their tasks, lose cpu/cpuset files
            detail["made_leaf"] = dst
        moved = []
        for pid in pids:
            try:
                self.cgroups.move(dst, pid)
            except OSError as e:
                if e.errno == errno.ESRCH:
                    continue  # it exited meanwhile
                raise
            moved.append(pid)
            if pid in self.tracked:
                self.tracked[pid].cgroup = dst
        return {"pids": moved, **detail}

    def op_run_payload(self, op: dict[str, Any], owner: int, where: str) -> dict[str, Any]:
        out = os.path.join(self.work_dir, f"payload-{op['name']}.out")
        pid = self.pool.spawn("exec", {"path": op["path"], "args": op["args"], "out": out})
        self.tracked[pid] = Tracked(
            pid, f"payload {op['name']}", op["cgroup"], owner, {}, op["name"]
        )
        self.payloads[op["name"]] = pid
        if op["cgroup"]:
            self.cgroups.move(op["cgroup"], pid)
        self.start()
        return {"pid": pid}

    def op_wait_payload(self, op: dict[str, Any], owner: int, where: str) -> dict[str, Any]:
        pid = self.payloads.pop(op["name"])
        if self._wait_ended([pid], op["timeout_s"]):
            self.payloads[op["name"]] = pid  # still running: a later kill may end it
            raise OpError(f"payload {op['name']} did not exit in {op['timeout_s']:g} s")
        return self.payload_end(pid)

    def op_kill_payload(self, op: dict[str, Any], owner: int, where: str) -> dict[str, Any]:
        pid = self.payloads.pop(op["name"])
        if self.alive(pid):
            self.pool.signal(signal.SIGKILL, [pid])
            if self._wait_ended([pid], _KILL_WAIT_S):
                raise OpError(f"payload {op['name']} (pid {pid}) did not end after SIGKILL")
        return self.payload_end(pid)

    def payload_end(self, pid: int) -> dict[str, Any]:
        """How a payload ended: ``exit`` (``exit 0``, ``killed by SIGKILL``), the tail of its output."""
        ev = self.ended.get(pid, {})
        t = self.tracked[pid]
        detail: dict[str, Any] = {"pid": pid, "exit": str(ev.get("exit", "?"))[:64]}
        exit_text, error = detail["exit"], str(ev.get("error", ""))
        if error and error != "no report":  # the exec itself failed: the wrapper reported it
            detail.update(error=error[:512], code=127)
        elif exit_text.startswith("exit ") and exit_text[5:].isdigit():
            detail["code"] = int(exit_text[5:])
        try:
            with open(os.path.join(self.work_dir, f"payload-{t.payload}.out"), "rb") as f:
                f.seek(0, 2)
                size = f.tell()
                f.seek(max(0, size - _OUTPUT_TAIL))
                detail["output"] = f.read().decode(errors="replace")
                detail["output_bytes"] = size
        except OSError as e:
            detail["output"] = f"(no output: {e.strerror})"
        return detail
