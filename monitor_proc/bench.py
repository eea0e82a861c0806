"""``python -m monitor_proc.bench``: the monitor's CPU cost and sample latency, measured.

A guest is laid out in anonymous memory from a real kernel's BTF and symbols (every field
the sample reads at its real offset: each CPU's ``struct rq`` with its ``scx_rq``, a
``scx_sched`` behind ``scx_root`` with per-CPU event counters and a DSQ hash table), then
the real sample loop runs against it at the asked rate, with a stand-in VMM (another
process) answering its status and vCPU run-time requests on the bus. The figure is the sampling thread's own CPU
time over wall time (one core = 100 %), and the latency of each sample.
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import statistics
import struct
import sys
import tempfile
import time
from typing import Any

import zmq

from schedlab_shared.bus import topics
from schedlab_shared.bus import vmm as vmm_proto
from schedlab_shared.bus.client import subscriber
from schedlab_shared.bus.server import ControlServer

from .program import Program
from .translate import START_KERNEL_MAP, AddressTranslator, Layout

__all__ = ("SyntheticKernelMemory", "main", "measure")

_POB = 0xFFFF_8880_0000_0000
_AREA_PA, _AREA_STRIDE = 96 << 20, 4 << 20  # per-CPU areas in the direct map
_SCHED_PA, _TASK_PA, _DSQ_PA, _TBL_PA = 80 << 20, 81 << 20, 82 << 20, 83 << 20
_PCPU_IN_AREA = 0x300000


class SyntheticKernelMemory:
    """Guest "RAM" in an anonymous mapping (zero pages until written), read like the live
    guest's shared file (an mmap slice per read)."""

    _by_fd: dict[int, SyntheticKernelMemory] = {}

    def __init__(self, size: int) -> None:
        self.mm = mmap.mmap(-1, size, flags=mmap.MAP_SHARED)  # shared with a forked child
        SyntheticKernelMemory._by_fd[0] = self

    @classmethod
    def attach(cls, _clocks: list[int]) -> SyntheticKernelMemory:
        """The mapping as a forked child inherited it."""
        return cls._by_fd[0]

    def read(self, pa: int, size: int) -> bytes:
        if pa < 0 or pa + size > len(self.mm):
            from .memory import FaultError

            raise FaultError(pa, size)
        return self.mm[pa : pa + size]

    def write(self, pa: int, data: bytes) -> None:
        self.mm[pa : pa + len(data)] = data

    def close(self) -> None:
        self.mm.close()


def _pa(va: int) -> int:
    return va - START_KERNEL_MAP if va >= START_KERNEL_MAP else va - _POB


def build_guest(vmlinux: str, ncpus: int) -> Program:
    """A Program over synthetic memory shaped by ``vmlinux``'s BTF and symbols."""
    prog = Program(vmlinux, SyntheticKernelMemory(128 << 20))
    mem: SyntheticKernelMemory = prog.memory  # type: ignore[assignment]
    prog._translator = AddressTranslator(mem, Layout(_POB, 0, 0, 4))  # linear maps only

    def put(va: int, struct_name: str, path: str, value: int) -> None:
        m = prog.member(struct_name, path)
        mem.write(_pa(va + m.offset), value.to_bytes(m.size, "little", signed=value < 0))

    start = prog.symbol("__per_cpu_start")
    mem.write(_pa(prog.symbol("nr_cpu_ids")), struct.pack("<I", ncpus))
    rq_in_area = prog.symbol("runqueues") - start
    task = _POB + _TASK_PA
    put(task, "task_struct", "pid", 1)
    mem.write(_pa(task + prog.member_offset("task_struct", "comm")), b"spinner\0")
    for cpu in range(ncpus):
        area = _POB + _AREA_PA + cpu * _AREA_STRIDE
        mem.write(
            _pa(prog.symbol("__per_cpu_offset") + 8 * cpu),
            struct.pack("<Q", (area - start) & ((1 << 64) - 1)),
        )
        rq = area + rq_in_area
        prog.cache.setdefault("bench_clocks", [0]).append(
            _pa(rq + prog.member_offset("rq", "clock"))
        )
        for path, value in (
            ("cpu", cpu),
            ("nr_running", 2),
            ("clock", 10**9),
            ("curr", task),
            ("scx.nr_running", 2),
            ("scx.local_dsq.nr", 1),
            ("scx.flags", 1),
        ):
            put(rq, "rq", path, value)
    sch = _POB + _SCHED_PA
    mem.write(_pa(prog.symbol("scx_root")), struct.pack("<Q", sch))
    name = prog.member("scx_sched", "ops.name")
    mem.write(_pa(sch + name.offset), b"qmap\0")
    put(sch, "scx_sched", "pcpu", start + _PCPU_IN_AREA)
    put(sch, "scx_sched", "watchdog_timeout", 1250)
    tbl = _POB + _TBL_PA
    put(sch, "scx_sched", "dsq_hash.tbl", tbl)
    put(tbl, "bucket_table", "size", 4)
    node = prog.member_offset("scx_dispatch_q", "hash_node")
    buckets = prog.member_offset("bucket_table", "buckets")
    for i in range(2):  # two user DSQs, each alone in its bucket
        dsq = _POB + _DSQ_PA + 0x200 * i
        put(dsq, "scx_dispatch_q", "id", i)
        put(dsq, "scx_dispatch_q", "nr", 3)
        mem.write(_pa(dsq + node), struct.pack("<Q", 1))  # nulls marker ends the chain
        mem.write(_pa(tbl + buckets + 8 * i), struct.pack("<Q", dsq + node))
    return prog


def _stand_in_vmm(
    endpoint: str, ncpus: int, clocks: list[int], stop: Any, sample_pub: str | None = None
) -> None:
    """A VMM stand-in in its own process (as the real one is): answers Status_ and VcpuTimes,
    and moves every CPU's rq clock on every 4 ms (a live guest's ticks at HZ=250). With
    ``sample_pub`` it also subscribes to the samples (as ``attach monitor --live`` does), so
    the monitor packs and sends each one."""
    prog_mem = SyntheticKernelMemory.attach(clocks)
    ctx = zmq.Context()
    sub = subscriber(ctx, sample_pub, topics.monitor_sample("bench")) if sample_pub else None

    def status(_m: Any) -> vmm_proto.StatusReply:
        return vmm_proto.StatusReply("running", "bench", "bench", 0.0, [], {})

    def times(_m: Any) -> vmm_proto.VcpuTimesReply:
        ns = time.monotonic_ns()
        return vmm_proto.VcpuTimesReply(time.monotonic(), [ns] * ncpus, list(range(ncpus)), 1)

    server = ControlServer(ctx, endpoint, {vmm_proto.Status_: status, vmm_proto.VcpuTimes: times})
    poller = zmq.Poller()
    poller.register(server.socket, zmq.POLLIN)
    if sub is not None:
        poller.register(sub, zmq.POLLIN)
    next_tick = time.monotonic()
    while not stop.is_set():
        ready = dict(poller.poll(4))
        if server.socket in ready:
            server.handle_ready()
        while sub is not None and sub in ready and sub.poll(0):
            sub.recv_multipart()
        if time.monotonic() >= next_tick:
            next_tick += 0.004
            clock = struct.pack("<Q", time.monotonic_ns())
            for pa in clocks[1:]:
                prog_mem.write(pa, clock)
    server.close()
    if sub is not None:
        sub.close(0)
    ctx.term()


def measure(
    vmlinux: str,
    ncpus: int = 8,
    rate_hz: float = 100.0,
    seconds: float = 5.0,
    subscribed: bool = False,
) -> dict[str, Any]:
    """Run the real sample loop for ``seconds`` at ``rate_hz``; return the figures.

    :param subscribed: a subscriber takes the published samples (else none listens, as in
        most runs, and the monitor only writes its file).
    """
    from .service import Monitor

    prog = build_guest(vmlinux, ncpus)
    with tempfile.TemporaryDirectory(prefix="schedlab-bench-monitor-") as tmp:
        ep = {k: f"ipc://{tmp}/{k}" for k in ("vctl", "cctl", "mctl", "mpub")}
        mon = Monitor(
            vm_id="bench",
            vm_ctl=ep["vctl"],
            collector_ctl=ep["cctl"],
            vmlinux=vmlinux,
            run_dir=tmp,
            ctl=ep["mctl"],
            pub=ep["mpub"],
            interval_s=1.0 / rate_hz,
            max_samples=int(rate_hz * seconds),
            dump_on_violation=True,
        )
        import multiprocessing

        fork = multiprocessing.get_context("fork")
        stop = fork.Event()
        vmm = fork.Process(
            target=_stand_in_vmm,
            args=(
                ep["vctl"],
                ncpus,
                prog.cache["bench_clocks"],
                stop,
                ep["mpub"] if subscribed else None,
            ),
        )
        vmm.start()
        if subscribed:  # its subscription reaches the monitor before the loop starts
            deadline = time.monotonic() + 5.0
            while not mon.pub.listened(mon._topic) and time.monotonic() < deadline:
                mon._serve(0.05)
        latencies: list[float] = []
        sample = mon._sample

        def timed(p: Program, started_at: float) -> dict[str, Any]:
            t = time.perf_counter()
            out = sample(p, started_at)
            latencies.append(time.perf_counter() - t)
            return out

        sample(prog, time.time())  # the first sample resolves the plans: not a steady cost

        mon._sample = timed  # type: ignore[method-assign, assignment]
        try:
            wall0, cpu0 = time.perf_counter(), time.thread_time()
            mon._sample_loop(prog, time.time())
            wall, cpu = time.perf_counter() - wall0, time.thread_time() - cpu0
            lines = mon.out_path.read_text().splitlines()
            line = (lines or ["{}"])[-1]
            vcpu_readings = sum('"vcpus":' in x for x in lines)
        finally:
            stop.set()
            vmm.join(5)
            if vmm.is_alive():
                vmm.kill()
                vmm.join(5)
            mon.close_sockets()
            mon.ctx.term()
            prog.memory.close()  # type: ignore[attr-defined]  # a GuestRamMemory here
    lat = sorted(latencies)
    return {
        "cpus": ncpus,
        "rate_hz": rate_hz,
        "seconds": round(wall, 2),
        "samples": mon.samples,
        "errors": mon.errors,
        "last_error": mon.last_error,
        "cpu_percent_of_one_core": round(100.0 * cpu / wall, 2),
        "sample_ms_p50": round(1000 * statistics.median(lat), 3) if lat else None,
        "sample_ms_p99": round(1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))], 3)
        if lat
        else None,
        "subscribed": subscribed,
        "published": mon.published,
        "vcpu_readings": vcpu_readings,  # samples carrying the stand-in VMM's vCPU times
        "sample_bytes": len(line),
        "sample_fields": sorted(json.loads(line).get("cpus", [{}])[0]) if line != "{}" else [],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="monitor_proc.bench", description=__doc__)
    ap.add_argument("--vmlinux", required=True, help="a sched_ext kernel's ELF (BTF + kallsyms)")
    ap.add_argument("--cpus", type=int, default=8)
    ap.add_argument("--rate", type=float, default=100.0, help="samples per second")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--subscribed", action="store_true", help="a subscriber takes the samples")
    args = ap.parse_args(argv)
    if not (1 <= args.cpus <= 256 and 0 < args.rate <= 1000 and 0 < args.seconds <= 600):
        ap.error("--cpus 1..256, --rate (0, 1000], --seconds (0, 600]")
    if not os.path.isfile(args.vmlinux):
        ap.error(f"--vmlinux {args.vmlinux}: no such file")
    json.dump(
        measure(args.vmlinux, args.cpus, args.rate, args.seconds, args.subscribed), sys.stdout
    )
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
