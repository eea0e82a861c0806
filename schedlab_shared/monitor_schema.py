"""The monitor's sample lines and result fields: every field defined here, checked on read.

A monitor writes one JSON sample per line to ``monitor-<name>.jsonl`` (and publishes it as
``monitor.Sample``); the orchestrator, the verdicts and ``schedlab attach ... top`` read
them back through :func:`check_sample`. A field the guest kernel lacks is absent from the
sample, never zero: readers test ``key in cpu``.

Sample line::

    {"elapsed_ms": 1234.5, "monitor": "monitor",
     "cpus": [{"cpu": 0, "nr_running": 1, "rq_clock": 5123456789, ...CPU_FIELDS}],
     "scx": {...SCX_FIELDS}          # only while a sched_ext scheduler is attached
     "vcpus": {"at_s": ..., "run_ns": [...], "shared": 1}   # the host's view, when known
     "domains": [[{...DOMAIN_FIELDS}, ...], ...]   # per CPU, once per run
     "watchdog": {...WATCHDOG_FIELDS}              # once, when an override was applied
     "bpf": {...BPF_FIELDS}}                       # at start, then every few seconds
"""

from __future__ import annotations

import re
from typing import Any

__all__ = (
    "BPF_FIELDS",
    "BPF_MAP_FIELDS",
    "BPF_PROG_FIELDS",
    "CPU_FIELDS",
    "DOMAIN_FIELDS",
    "EVENT_NAME",
    "MAX_CPUS",
    "MAX_DSQS",
    "SCHEDSTAT_FIELDS",
    "SCX_FIELDS",
    "MAX_BPF_ITEMS",
    "SchemaError",
    "VIOLATION_FIELDS",
    "WATCHDOG_FIELDS",
    "check_bpf",
    "check_sample",
    "check_violation",
    "check_watchdog",
)

MAX_CPUS = 1 << 16  # bound on the CPUs of one sample (the guest is untrusted)
MAX_DSQS = 1024  # user DSQs listed per sample
EVENT_NAME = re.compile(r"SCX_EV_[A-Z0-9_]{1,64}")

_INT = (int,)
_NUM = (int, float)

#: Per-CPU fields: name -> (types, meaning). ``cpu``, ``nr_running`` and ``rq_clock`` are
#: always present; the rest only where this kernel's BTF has them.
CPU_FIELDS: dict[str, tuple[tuple[type, ...], str]] = {
    "cpu": (_INT, "CPU number"),
    "nr_running": (_INT, "rq->nr_running: runnable tasks of every class"),
    "rq_clock": (_INT, "rq->clock, ns"),
    "clock_task": (_INT, "rq->clock_task, ns"),
    "nr_switches": (_INT, "rq->nr_switches"),
    "cfs_h_nr_queued": (_INT, "rq->cfs.h_nr_queued (h_nr_running before 6.12)"),
    "scx_nr_running": (_INT, "rq->scx.nr_running: tasks sched_ext holds on this CPU"),
    "scx_flags": (_INT, "rq->scx.flags (SCX_RQ_ONLINE 1, CAN_STOP_TICK 2, CLK_VALID 0x20...)"),
    "local_dsq_nr": (_INT, "rq->scx.local_dsq.nr: depth of the CPU's local DSQ"),
    "scx_clock": (_INT, "rq->scx.clock, ns"),
    "run_delay": (_INT, "rq->rq_sched_info.run_delay: ns tasks waited to run (schedstat)"),
    "pcount": (_INT, "rq->rq_sched_info.pcount: tasks that ran (schedstat)"),
    "yld_count": (_INT, "rq->yld_count (schedstat)"),
    "sched_count": (_INT, "rq->sched_count: __schedule() calls (schedstat)"),
    "sched_goidle": (_INT, "rq->sched_goidle (schedstat)"),
    "ttwu_count": (_INT, "rq->ttwu_count: wakeups onto this CPU (schedstat)"),
    "ttwu_local": (_INT, "rq->ttwu_local: wakeups from this CPU (schedstat)"),
    "curr_pid": (_INT, "pid of rq->curr"),
    "curr_comm": ((str,), "comm of rq->curr"),
    "vcpu_run_ns": (_INT, "host CPU time of this vCPU's thread, cumulative ns"),
}
SCHEDSTAT_FIELDS = (
    "run_delay",
    "pcount",
    "yld_count",
    "sched_count",
    "sched_goidle",
    "ttwu_count",
    "ttwu_local",
)

#: ``sample["scx"]``: the attached scheduler, through ``scx_root`` (or the pre-6.16 globals).
SCX_FIELDS: dict[str, tuple[tuple[type, ...], str]] = {
    "ops": ((str,), "ops.name of the attached BPF scheduler"),
    "exit_kind": (_INT, "scx_sched.exit_kind (0 while running; SCX_EXIT_* once exiting)"),
    "aborting": ((bool,), "scx_sched.aborting"),
    "bypass_depth": (_INT, "scx_sched.bypass_depth"),
    "watchdog_timeout": (_INT, "the watchdog timeout, jiffies"),
    "events": ((dict,), "SCX_EV_* -> total over CPUs since attach"),
    "dsqs": ((list,), "user DSQs: [{id, nr}] from the scheduler's DSQ hash table"),
    "dsqs_error": ((str,), "why the DSQ table could not be walked this time"),
}

#: One level of ``sample["domains"][cpu]``: ``rq->sd`` then each ``->parent``.
DOMAIN_FIELDS: dict[str, tuple[tuple[type, ...], str]] = {
    "level": (_INT, "sched_domain.level"),
    "name": ((str,), "sched_domain.name (SMT, MC, PKG, NUMA...)"),
    "flags": (_INT, "sched_domain.flags (SD_*)"),
    "span_weight": (_INT, "CPUs in the domain's span"),
    "balance_interval": (_INT, "sched_domain.balance_interval, ms"),
    "nr_balance_failed": (_INT, "sched_domain.nr_balance_failed"),
    "max_newidle_lb_cost": (_INT, "sched_domain.max_newidle_lb_cost, ns"),
}

#: ``sample["watchdog"]`` and the result's ``monitor.watchdog``.
WATCHDOG_FIELDS: dict[str, tuple[tuple[type, ...], str]] = {
    "requested_s": (_NUM, "the timeout the run asked for, seconds"),
    "requested": (_INT, "the same in jiffies (requested_s * CONFIG_HZ)"),
    "hz": (_INT, "CONFIG_HZ of the guest kernel"),
    "target": ((str,), "what was written: scx_sched.watchdog_timeout or scx_watchdog_timeout"),
    "previous": (_INT, "the timeout before the write, jiffies"),
    "read_back": (_INT, "the timeout read back after the write, jiffies"),
    "read_back_s": (_NUM, "read_back / hz"),
    "interval": (_INT, "scx_watchdog_interval written with it, jiffies (7.1+)"),
    "at_ms": (_NUM, "elapsed_ms of the write"),
    "error": ((str,), "why the override could not be applied"),
}

#: One entry of the result's ``monitor.violations``.
VIOLATION_FIELDS: dict[str, tuple[tuple[type, ...], str]] = {
    "check": ((str,), "imbalance, local_dsq_depth, stall, fallback_rate, keep_last_rate"),
    "cpu": ((int, type(None)), "the CPU (None for system-wide checks)"),
    "at_ms": (_NUM, "elapsed_ms of the first sample of the sustained run"),
    "until_ms": (_NUM, "elapsed_ms of its last sample"),
    "samples": (_INT, "consecutive violating samples"),
    "value": (_NUM, "the worst value seen in the run"),
    "limit": (_NUM, "the threshold"),
    "around": ((list,), "the values of the samples around it: [{at_ms, ...}]"),
    "detail": ((str,), "one line for the user"),
}


#: ``sample["bpf"]`` and the result's ``monitor.bpf``: BPF programs and maps in the guest.
BPF_FIELDS: dict[str, tuple[tuple[type, ...], str]] = {
    "at_ms": (_NUM, "elapsed_ms of the listing"),
    "stats_enabled": ((bool, type(None)), "kernel.bpf_stats_enabled (None: no such key)"),
    "progs": ((list,), "loaded programs by ID: [{...BPF_PROG_FIELDS}]"),
    "maps": ((list,), "maps by ID: [{...BPF_MAP_FIELDS}]"),
    "error": ((str,), "why the programs or maps could not be listed this time"),
}

#: One entry of ``bpf.progs`` (an unreadable program has only ``id`` and ``error``).
BPF_PROG_FIELDS: dict[str, tuple[tuple[type, ...], str]] = {
    "id": (_INT, "program ID (prog_idr)"),
    "name": ((str,), "bpf_prog_aux.name (at most 15 characters)"),
    "type": ((str,), "BPF_PROG_TYPE_* without the prefix (STRUCT_OPS, TRACING...)"),
    "insns": (_INT, "bpf_prog.len: instructions after verification"),
    "jited_len": (_INT, "bytes of JITed code"),
    "verified_insns": (_INT, "bpf_prog_aux.verified_insns: instructions the verifier processed"),
    "run_cnt": (_INT, "runs summed over CPUs (only while bpf_stats_enabled)"),
    "run_time_ns": (_INT, "run time summed over CPUs, ns (only while bpf_stats_enabled)"),
    "error": ((str,), "why this program could not be read"),
}

#: One entry of ``bpf.maps`` (an unreadable map has only ``id`` and ``error``).
BPF_MAP_FIELDS: dict[str, tuple[tuple[type, ...], str]] = {
    "id": (_INT, "map ID (map_idr)"),
    "name": ((str,), "bpf_map.name (libbpf names global data <obj>.bss, .data, .rodata)"),
    "type": ((str,), "BPF_MAP_TYPE_* without the prefix (ARRAY, HASH...)"),
    "key_size": (_INT, "bytes"),
    "value_size": (_INT, "bytes"),
    "max_entries": (_INT, "bpf_map.max_entries"),
    "flags": (_INT, "bpf_map.map_flags (BPF_F_*)"),
    "btf": ((bool,), "the map has BTF for its values"),
    "values": ((dict, list, str), "a global-data map's value decoded with its BTF"),
    "values_error": ((str,), "why a global-data map's value could not be read"),
    "error": ((str,), "why this map could not be read"),
}
MAX_BPF_ITEMS = 1024  # programs or maps in one listing


class SchemaError(ValueError):
    """A sample or result field that is not what this module defines."""


def _check_fields(
    d: Any, spec: dict[str, tuple[tuple[type, ...], str]], what: str, required: tuple[str, ...] = ()
) -> None:
    if not isinstance(d, dict):
        raise SchemaError(f"{what}: not a map")
    for key in required:
        if key not in d:
            raise SchemaError(f"{what}: missing {key!r}")
    for key, value in d.items():
        if key not in spec:
            raise SchemaError(f"{what}: unknown field {key!r}")
        types = spec[key][0]
        if isinstance(value, bool) and bool not in types:
            raise SchemaError(f"{what}.{key}: a bool where {types[0].__name__} is expected")
        if not isinstance(value, types):
            raise SchemaError(
                f"{what}.{key}: {type(value).__name__}, expected "
                f"{'/'.join(t.__name__ for t in types)}"
            )


def _check_scx(scx: Any) -> None:
    _check_fields(scx, SCX_FIELDS, "scx")
    for name, total in scx.get("events", {}).items():
        if not isinstance(name, str) or not EVENT_NAME.fullmatch(name):
            raise SchemaError(f"scx.events: bad counter name {name!r}")
        if not isinstance(total, int) or isinstance(total, bool):
            raise SchemaError(f"scx.events.{name}: not an integer")
    dsqs = scx.get("dsqs", [])
    if len(dsqs) > MAX_DSQS:
        raise SchemaError(f"scx.dsqs: {len(dsqs)} entries (at most {MAX_DSQS})")
    for q in dsqs:
        if not isinstance(q, dict) or not all(isinstance(q.get(k), int) for k in ("id", "nr")):
            raise SchemaError(f"scx.dsqs: bad entry {q!r}")


def check_bpf(b: Any) -> dict[str, Any]:
    """``b`` if it is a BPF listing (``sample["bpf"]``, ``monitor.bpf``), else
    :class:`SchemaError`."""
    _check_fields(b, BPF_FIELDS, "bpf")
    for key, spec in (("progs", BPF_PROG_FIELDS), ("maps", BPF_MAP_FIELDS)):
        items = b.get(key, [])
        if len(items) > MAX_BPF_ITEMS:
            raise SchemaError(f"bpf.{key}: {len(items)} entries (at most {MAX_BPF_ITEMS})")
        for item in items:
            _check_fields(item, spec, f"bpf.{key}[]", ("id",))
    return b


def check_watchdog(w: Any) -> dict[str, Any]:
    """``w`` if it is a watchdog observation, else :class:`SchemaError`."""
    _check_fields(w, WATCHDOG_FIELDS, "watchdog")
    return w


def check_violation(v: Any) -> dict[str, Any]:
    """``v`` if it is a violation entry, else :class:`SchemaError`."""
    _check_fields(v, VIOLATION_FIELDS, "violation", ("check", "at_ms", "value", "limit"))
    return v


def check_sample(s: Any) -> dict[str, Any]:
    """``s`` if it is a sample line as defined here, else :class:`SchemaError`.

    :param s: one decoded JSON line of ``monitor-<name>.jsonl``.
    """
    if not isinstance(s, dict):
        raise SchemaError("sample: not a map")
    if not isinstance(s.get("elapsed_ms"), int | float) or isinstance(s.get("elapsed_ms"), bool):
        raise SchemaError("sample: elapsed_ms missing or not a number")
    cpus = s.get("cpus")
    if not isinstance(cpus, list) or len(cpus) > MAX_CPUS:
        raise SchemaError("sample: cpus missing, not a list, or too long")
    for c in cpus:
        _check_fields(c, CPU_FIELDS, "cpu", ("cpu", "nr_running", "rq_clock"))
    for key in s:
        if key not in (
            "elapsed_ms",
            "cpus",
            "monitor",
            "scx",
            "vcpus",
            "domains",
            "watchdog",
            "bpf",
        ):
            raise SchemaError(f"sample: unknown field {key!r}")
    if "scx" in s:
        _check_scx(s["scx"])
    if "domains" in s:
        doms = s["domains"]
        if not isinstance(doms, list) or len(doms) > MAX_CPUS:
            raise SchemaError("sample: domains not a list")
        for chain in doms:
            if not isinstance(chain, list):
                raise SchemaError("sample: a domain chain is not a list")
            for level in chain:
                _check_fields(level, DOMAIN_FIELDS, "domain")
    if "watchdog" in s:
        check_watchdog(s["watchdog"])
    if "bpf" in s:
        check_bpf(s["bpf"])
    if "vcpus" in s:
        v = s["vcpus"]
        if not isinstance(v, dict) or not isinstance(v.get("run_ns"), list):
            raise SchemaError("sample: vcpus without run_ns")
    return s
