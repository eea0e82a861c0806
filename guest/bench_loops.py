"""What the native loops measure against the same loops in Python (``schedlab bench workloads``).

Run as ``python -m guest.bench_loops --seconds S`` with ``_schedlab_work`` importable; prints
one JSON map. Each figure pair is the same loop, native then Python:

``pipe_wake``
    a pipe ping-pong between two processes: the latency from the sender's stamp to the
    woken receiver reading it (p50, p99, max, round trips per second).
``timer_wake``
    sleeping 100 us to an absolute deadline, the overshoot after it.
``checkpoint``
    the time between two consecutive checkpoints of a spin loop: the resolution at which a
    stall (a gap) is seen.
"""

from __future__ import annotations

import json
import os
import sys
import time

from guest.native import load

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ("main", "measure")


def _summary(lat: list[int], seconds: float) -> dict[str, Any]:
    lat.sort()
    n = len(lat)
    if not n:
        return {"n": 0}
    return {"n": n, "p50_ns": lat[n // 2], "p99_ns": lat[min(n - 1, (n * 99) // 100)],
            "max_ns": lat[-1], "per_s": round(n / seconds, 1)}  # fmt: skip


def _native_meter_summary(ffi: Any, lib: Any, m: Any, seconds: float) -> dict[str, Any]:
    if not m.wake_n:
        return {"n": 0}
    return {"n": int(m.wake_n), "p50_ns": int(lib.sl_quantile(m, 0.5)),
            "p99_ns": int(lib.sl_quantile(m, 0.99)), "max_ns": int(m.wake_max),
            "per_s": round(m.wake_n / seconds, 1)}  # fmt: skip


def _pair(child: Any, parent: Any) -> Any:
    """Run ``child(r, w)`` in a forked process and ``parent(r, w)`` here over two pipes."""
    a_r, a_w = os.pipe()
    b_r, b_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(a_w)
            os.close(b_r)
            child(a_r, b_w)
        except BaseException:  # noqa: B036 - the child must exit, whatever happened
            code = 1
        finally:
            os._exit(code)
    os.close(a_r)
    os.close(b_w)
    try:
        return parent(b_r, a_w)
    finally:
        os.close(a_w)  # the child sees EOF and ends
        os.close(b_r)
        os.waitpid(pid, 0)


def _py_pipe(seconds: float) -> dict[str, Any]:
    def echo(r: int, w: int) -> None:
        while True:
            data = os.read(r, 8)
            if len(data) < 8:
                return
            os.write(w, time.monotonic_ns().to_bytes(8, "little"))

    def drive(r: int, w: int) -> dict[str, Any]:
        lat: list[int] = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            os.write(w, time.monotonic_ns().to_bytes(8, "little"))
            stamp = int.from_bytes(os.read(r, 8), "little")
            lat.append(time.monotonic_ns() - stamp)  # the child's send -> our wakeup
        return _summary(lat, seconds)

    return _pair(echo, drive)


def _native_pipe(seconds: float) -> dict[str, Any]:
    ffi, lib = load()

    def side(r: int, w: int, first: int) -> Any:
        m = ffi.new("sl_meter *")
        lib.sl_meter_init(m)
        end = lib.sl_now_ns() + int(seconds * 1e9)
        while lib.sl_now_ns() < end:
            if lib.sl_pipe_pong(m, min(end, lib.sl_now_ns() + 20_000_000), ffi.NULL, r, w, 0,
                                ffi.NULL, 0, first) < 0:  # fmt: skip
                break
            first = 0
        return m

    return _pair(lambda r, w: side(r, w, 0),
                 lambda r, w: _native_meter_summary(ffi, lib, side(r, w, 1), seconds))  # fmt: skip


def _py_timer(seconds: float) -> dict[str, Any]:
    lat: list[int] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        target = time.monotonic_ns() + 100_000
        time.sleep(max(0.0, (target - time.monotonic_ns()) / 1e9))
        lat.append(max(0, time.monotonic_ns() - target))
    return _summary(lat, seconds)


def _native_timer(seconds: float) -> dict[str, Any]:
    ffi, lib = load()
    m = ffi.new("sl_meter *")
    lib.sl_meter_init(m)
    end = lib.sl_now_ns() + int(seconds * 1e9)
    while lib.sl_now_ns() < end:
        lib.sl_sleep_until(m, lib.sl_now_ns() + 100_000)
    return _native_meter_summary(ffi, lib, m, seconds)


def _py_checkpoint(seconds: float) -> dict[str, Any]:
    from guest.worktypes import UNIT_ITERS, _unit

    gaps: list[int] = []
    last = time.monotonic_ns()
    end = last + int(seconds * 1e9)
    while last < end:
        _unit(UNIT_ITERS)
        now = time.monotonic_ns()
        gaps.append(now - last)
        last = now
    return _summary(gaps, seconds)


def _native_checkpoint(seconds: float) -> dict[str, Any]:
    ffi, lib = load()
    m = ffi.new("sl_meter *")
    lib.sl_meter_init(m)
    t0 = lib.sl_now_ns()
    lib.sl_spin(m, t0 + int(seconds * 1e9), ffi.NULL, 1024)
    per = (lib.sl_now_ns() - t0) / max(1, m.units)
    return {"n": int(m.units), "mean_ns": round(per), "max_ns": int(m.max_gap_ns),
            "per_s": round(m.units / seconds, 1)}  # fmt: skip


def measure(seconds: float = 1.0) -> dict[str, Any]:
    """Every figure pair (see the module docstring)."""
    load().__len__()  # fail early without the extension
    lib = load()[1]
    lib.sl_worker_setup()
    return {
        "seconds": seconds,
        "pipe_wake": {"native": _native_pipe(seconds), "python": _py_pipe(seconds)},
        "timer_wake": {"native": _native_timer(seconds), "python": _py_timer(seconds)},
        "checkpoint": {"native": _native_checkpoint(seconds), "python": _py_checkpoint(seconds)},
    }


def main(argv: list[str] | None = None) -> None:
    args = argv if argv is not None else sys.argv[1:]
    seconds = float(args[args.index("--seconds") + 1]) if "--seconds" in args else 1.0
    json.dump(measure(seconds), sys.stdout)
    print()


if __name__ == "__main__":
    main()
