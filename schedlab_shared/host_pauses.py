"""When the host did not run the guest's vCPUs: found once, from the monitor's samples, and
read by every verdict that judges time (gaps, fairness windows, starvation).

A verdict is a claim about the scheduler, not the host. A vCPU whose host thread got no CPU
(the host was loaded, or the VM was stopped) cannot run its tasks, however good the
scheduler; the guest's clock still advances, so its workers see a gap and lose their share.
The monitor samples carry each vCPU thread's cumulative host run time (``vcpus.run_ns``,
``vmm_proc.vcpu_times``); an interval between two readings in which a thread ran less than
:data:`MAX_RUN_SHARE` of the wall time while one of its vCPUs had runnable tasks
(``nr_running > 0``) and was running one (``curr_pid > 0``, not the idle task) is paused,
and consecutive paused intervals adding up to at least :data:`MIN_PAUSE_MS` of time not
run are one pause. A vCPU in its idle task halts and its thread sleeps: not a pause, even
with tasks queued on it (a sched_ext scheduler that does not dispatch them is the
scheduler's failure, never excused); a sample without ``curr_pid`` names no pause.

A pause, as ``result.json``'s ``host_pauses.pauses`` holds it (:data:`PAUSE_FIELDS`)::

    {"vcpus": [0, 1], "at_ms": 1840.2, "ms": 1201.7, "ran_ms": 3.1,
     "guest_from_ns": 7612345678, "guest_to_ns": 8814045678}

``at_ms`` is on the samples' timeline (ms since the VM started); ``guest_*_ns`` are the
guest's CLOCK_BOOTTIME, which the workers' reports use, mapped through the clock anchors
(:func:`clock_base_ns`) and None when no anchor was seen.

>>> pauses = find_pauses(samples)
>>> pauses = place_in_guest(pauses, clock_base_ns(anchors, vm_started_at))
>>> describe(pauses[0], t0_ns)
'host did not run vCPU 0-1 for 1199 ms at +0.8 s'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = (
    "MAX_PAUSES",
    "MAX_RUN_SHARE",
    "MIN_PAUSE_MS",
    "PAUSE_FIELDS",
    "PauseError",
    "check_host_pauses",
    "clock_base_ns",
    "describe",
    "find_pauses",
    "not_run_ns",
    "place_in_guest",
)

MAX_RUN_SHARE = 0.1  # a thread that ran less than this share of an interval did not run
MIN_PAUSE_MS = 200.0  # shorter pauses are the host's ordinary time slicing
MAX_PAUSES = 256  # kept per run: evidence, not a log

_INT = (int,)
_NUM = (int, float)
_OPT_INT = (int, type(None))

#: One pause: name -> (types, meaning).
PAUSE_FIELDS: dict[str, tuple[tuple[type, ...], str]] = {
    "vcpus": ((list,), "the vCPUs of the host thread that did not run"),
    "at_ms": (_NUM, "its start on the samples' timeline: ms since the VM started"),
    "ms": (_NUM, "its wall length, ms (between the readings around it)"),
    "ran_ms": (_NUM, "host CPU time the thread got within it, ms"),
    "guest_from_ns": (_OPT_INT, "its start on the guest's CLOCK_BOOTTIME (None: no anchor)"),
    "guest_to_ns": (_OPT_INT, "its end on the guest's CLOCK_BOOTTIME (None: no anchor)"),
}


class PauseError(ValueError):
    """A ``host_pauses`` section that does not match :data:`PAUSE_FIELDS` (names the field)."""


def _groups(ncpus: int, shared: int) -> list[list[int]]:
    """The vCPUs each host thread runs: one each, or QEMU's single-threaded TCG (one thread
    for all)."""
    shared = max(1, min(shared, ncpus))
    if shared == 1:
        return [[i] for i in range(ncpus)]
    return [list(range(i, min(ncpus, i + shared))) for i in range(0, ncpus, shared)]


def _readings(
    samples: Iterable[Mapping[str, Any]],
) -> list[tuple[float, float, list[int], int, set[int]]]:
    """(elapsed_ms, at_s, run_ns, shared, busy cpus) of the samples that carry run times."""
    out = []
    for s in samples:
        v = s.get("vcpus")
        if not isinstance(v, Mapping) or not isinstance(v.get("run_ns"), list):
            continue
        busy = {
            c["cpu"]
            for c in s.get("cpus", ())
            if c.get("nr_running", 0) > 0 and c.get("curr_pid", 0) > 0
        }
        shared = v.get("shared", 1)
        out.append(
            (
                float(s["elapsed_ms"]),
                float(v.get("at_s", 0.0)),
                [n if isinstance(n, int) else -1 for n in v["run_ns"][:4096]],
                shared if isinstance(shared, int) and shared > 0 else 1,
                busy,
            )
        )
    return out


def find_pauses(
    samples: Iterable[Mapping[str, Any]],
    max_run_share: float = MAX_RUN_SHARE,
    min_pause_ms: float = MIN_PAUSE_MS,
) -> list[dict[str, Any]]:
    """The host pauses in a monitor's samples (checked lines, in order); guest times None."""
    reads = _readings(samples)
    open_: dict[tuple[int, ...], dict[str, Any]] = {}
    out: list[dict[str, Any]] = []

    def close(key: tuple[int, ...]) -> None:
        p = open_.pop(key)
        if p["ms"] - p["ran_ms"] >= min_pause_ms and len(out) < MAX_PAUSES:
            out.append({k: round(v, 1) if isinstance(v, float) else v for k, v in p.items()})

    for (ms0, at0, run0, shared, busy), (_ms1, at1, run1, _s, _b) in zip(
        reads, reads[1:], strict=False
    ):
        dt_ns = (at1 - at0) * 1e9
        if dt_ns <= 0:
            continue
        for group in _groups(min(len(run0), len(run1)), shared):
            key = tuple(group)
            deltas = [run1[i] - run0[i] for i in group if run0[i] >= 0 and run1[i] >= 0]
            paused = (
                bool(deltas) and max(deltas) < max_run_share * dt_ns and bool(busy & set(group))
            )
            if not paused:
                if key in open_:
                    close(key)
                continue
            p = open_.setdefault(
                key,
                {"vcpus": group, "at_ms": ms0, "ms": 0.0, "ran_ms": 0.0,
                 "guest_from_ns": None, "guest_to_ns": None},
            )  # fmt: skip
            p["ms"] += dt_ns / 1e6
            p["ran_ms"] += max(0, max(deltas)) / 1e6
    for key in list(open_):
        close(key)
    return sorted(out, key=lambda p: p["at_ms"])


def clock_base_ns(anchors: Sequence[tuple[float, int]], vm_started_at: float) -> int | None:
    """``guest CLOCK_BOOTTIME - samples' elapsed_ms * 1e6``, from anchors ``(host time.time()
    a guest frame arrived, the guest's CLOCK_BOOTTIME it carried)``: a frame arrives after
    it was stamped, so the smallest ``host - guest`` is the closest. None without anchors or
    without the VM's start time."""
    diffs = [h - g / 1e9 for h, g in anchors if h > 0 and g > 0]
    if not diffs or vm_started_at <= 0:
        return None
    return int((vm_started_at - min(diffs)) * 1e9)


def place_in_guest(pauses: list[dict[str, Any]], base_ns: int | None) -> list[dict[str, Any]]:
    """The pauses with their guest times (``base_ns`` from :func:`clock_base_ns`)."""
    if base_ns is None:
        return pauses
    return [
        {
            **p,
            "guest_from_ns": base_ns + int(p["at_ms"] * 1e6),
            "guest_to_ns": base_ns + int((p["at_ms"] + p["ms"]) * 1e6),
        }
        for p in pauses
    ]


def _cpus(vcpus: Sequence[int]) -> str:
    v = sorted(vcpus)
    return (
        f"{v[0]}-{v[-1]}"
        if len(v) > 1 and v == list(range(v[0], v[-1] + 1))
        else ",".join(map(str, v))
    )


def describe(p: Mapping[str, Any], t0_ns: int | None = None) -> str:
    """``host did not run vCPU 1 for 1085 ms at +0.8 s`` (``t0_ns``: the guest time the
    verdict's ``+`` counts from; without it, the samples' timeline)."""
    not_run = p["ms"] - p["ran_ms"]
    if t0_ns is not None and p.get("guest_from_ns") is not None:
        at = f"+{(p['guest_from_ns'] - t0_ns) / 1e9:.1f} s"
    else:
        at = f"{p['at_ms'] / 1000:.1f} s after the VM started"
    return f"host did not run vCPU {_cpus(p['vcpus'])} for {not_run:.0f} ms at {at}"


def not_run_ns(p: Mapping[str, Any], lo_ns: int, hi_ns: int) -> int:
    """Nanoseconds of ``[lo_ns, hi_ns]`` (guest clock) the pause took from its vCPUs: the
    overlap, at most the time the thread did not run. 0 without guest times."""
    a, b = p.get("guest_from_ns"), p.get("guest_to_ns")
    if a is None or b is None:
        return 0
    overlap = max(0, min(hi_ns, b) - max(lo_ns, a))
    return int(min(overlap, (p["ms"] - p["ran_ms"]) * 1e6))


def check_host_pauses(section: Any, where: str = "host_pauses") -> dict[str, Any]:
    """``section`` unchanged if it is ``{"pauses": [...PAUSE_FIELDS], "clock_base_ns": int |
    None, "reason": str}``; an untrusted guest cannot write here, but a file can be edited.

    :raises PauseError: the first bad field, by its path.
    """
    if not isinstance(section, dict):
        raise PauseError(f"{where}: want a map")
    base = section.get("clock_base_ns")
    if base is not None and (not isinstance(base, int) or isinstance(base, bool)):
        raise PauseError(f"{where}.clock_base_ns: want an int or null")
    pauses = section.get("pauses")
    if not isinstance(pauses, list) or len(pauses) > MAX_PAUSES:
        raise PauseError(f"{where}.pauses: want a list of at most {MAX_PAUSES}")
    for i, p in enumerate(pauses):
        at = f"{where}.pauses[{i}]"
        if not isinstance(p, dict):
            raise PauseError(f"{at}: want a map")
        for name, (types, _) in PAUSE_FIELDS.items():
            v = p.get(name, ...)
            if v is ... or isinstance(v, bool) or not isinstance(v, types):
                raise PauseError(
                    f"{at}.{name}: missing or not {'/'.join(t.__name__ for t in types)}"
                )
        if not p["vcpus"] or not all(isinstance(c, int) and c >= 0 for c in p["vcpus"]):
            raise PauseError(f"{at}.vcpus: want CPU numbers")
        if p["ms"] < 0 or p["ran_ms"] < 0 or p["ran_ms"] > p["ms"] + 1:
            raise PauseError(f"{at}: ms {p['ms']} / ran_ms {p['ran_ms']} out of range")
    return section
