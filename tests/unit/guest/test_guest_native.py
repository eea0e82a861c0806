"""_schedlab_work: the native meter and loops, on the host (the guest runs the same build)."""

from __future__ import annotations

import os
import threading
import time

import pytest

from tests.framework.native import native_on_path


@pytest.fixture(scope="module")
def native():  # noqa: ANN201
    native_on_path()
    from guest.native import load

    return load()


def _meter(ffi, lib):  # noqa: ANN001, ANN202
    m = ffi.new("sl_meter *")
    lib.sl_meter_init(m)
    return m


def test_loading_twice_is_one_import(native) -> None:  # noqa: ANN001
    from guest.native import load

    assert load() is native


def test_a_missing_extension_is_a_clear_error(monkeypatch) -> None:  # noqa: ANN001
    import guest.native as gn

    monkeypatch.setattr(gn, "_loaded", None)
    monkeypatch.setattr(gn, "MODULE", "_schedlab_no_such_module")
    with pytest.raises(gn.NativeUnavailable, match="_schedlab_no_such_module"):
        gn.load()


def test_spin_stops_at_its_deadline_and_counts_units(native) -> None:  # noqa: ANN001
    ffi, lib = native
    m = _meter(ffi, lib)
    start = lib.sl_now_ns()
    assert lib.sl_spin(m, start + 50_000_000, ffi.NULL, 1024) == 0
    took = lib.sl_now_ns() - start
    assert 50_000_000 <= took < 50_000_000 + 30_000_000
    assert m.units == m.iterations > 100
    assert m.last_cpu >= 0 and m.cpus[m.last_cpu // 64] & (1 << (m.last_cpu % 64))


def test_a_stop_flag_ends_the_loop_after_one_unit(native) -> None:  # noqa: ANN001
    ffi, lib = native
    m = _meter(ffi, lib)
    stop = ffi.new("int32_t *", 1)
    lib.sl_spin(m, lib.sl_now_ns() + 10_000_000_000, stop, 16)
    assert m.units == 1


def test_the_longest_gap_is_kept_with_its_cpu_and_start(native) -> None:  # noqa: ANN001
    ffi, lib = native
    m = _meter(ffi, lib)
    lib.sl_checkpoint(m)
    before = lib.sl_now_ns()
    time.sleep(0.03)  # an involuntary-looking gap: no sl_resume
    lib.sl_checkpoint(m)
    assert 30_000_000 <= m.max_gap_ns < 200_000_000
    assert m.max_gap_at_ns <= before and m.max_gap_cpu >= 0
    lib.sl_resume(m)  # a voluntary block is no gap
    time.sleep(0.05)
    lib.sl_resume(m)
    lib.sl_checkpoint(m)
    assert m.max_gap_ns < 50_000_000


def test_take_hands_over_the_counters_and_starts_afresh(native) -> None:  # noqa: ANN001
    ffi, lib = native
    m, out = _meter(ffi, lib), ffi.new("sl_meter *")
    lib.sl_spin(m, lib.sl_now_ns() + 5_000_000, ffi.NULL, 64)
    lib.sl_wake(m, 1000)
    units, cpu = m.units, m.last_cpu
    lib.sl_meter_take(m, out)
    assert out.units == units and out.wake_n == 1
    assert m.units == m.wake_n == m.max_gap_ns == 0
    assert m.last_cpu == cpu and m.last_ns == out.last_ns  # the clock carries on


def test_quantiles_are_within_the_histogram_resolution(native) -> None:  # noqa: ANN001
    ffi, lib = native
    m = _meter(ffi, lib)
    values = list(range(1000, 101_000, 100))  # 1000 values, 1 us .. 101 us
    for v in values:
        lib.sl_wake(m, v)
    for q in (0.5, 0.99):
        exact = values[int(q * (len(values) - 1))]
        assert abs(lib.sl_quantile(m, q) - exact) <= exact / 16 + 1, q
    assert lib.sl_quantile(m, 1.0) <= m.wake_max == values[-1]
    assert m.wake_n == 1000 and m.wake_sum == sum(values)
    empty = _meter(ffi, lib)
    assert lib.sl_quantile(empty, 0.5) == 0


def test_a_timer_sleep_records_its_overshoot(native) -> None:  # noqa: ANN001
    ffi, lib = native
    lib.sl_worker_setup()
    m = _meter(ffi, lib)
    target = lib.sl_now_ns() + 2_000_000
    assert lib.sl_sleep_until(m, target) == 0
    assert lib.sl_now_ns() >= target
    assert m.wake_n == 1 and m.wake_max < 50_000_000


def test_a_futex_ping_pong_between_two_threads(native) -> None:  # noqa: ANN001
    # Threads share the page as processes would: the same futex word and stamps.
    ffi, lib = native
    sh = ffi.new("sl_shared *")
    meters = [_meter(ffi, lib), _meter(ffi, lib)]
    end = lib.sl_now_ns() + 100_000_000

    def side(rank: int) -> None:
        while lib.sl_now_ns() < end and not sh.stop:
            lib.sl_futex_pong(meters[rank], end, sh, rank, 64)
        sh.stop = 1

    threads = [threading.Thread(target=side, args=(r,)) for r in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert all(not t.is_alive() for t in threads)
    a, b = meters
    assert a.units > 10 and abs(a.units - b.units) <= 1  # strictly alternating
    assert b.wake_n == b.units and a.wake_n >= a.units - 1


def test_pipe_ping_pong_sees_a_gone_partner(native) -> None:  # noqa: ANN001
    ffi, lib = native
    r, w = os.pipe()
    back_r, back_w = os.pipe()
    os.close(w)  # the partner's write end: gone
    m = _meter(ffi, lib)
    rc = lib.sl_pipe_pong(
        m, lib.sl_now_ns() + 1_000_000_000, ffi.NULL, r, back_w, 16, ffi.NULL, 0, 0
    )
    assert rc == -__import__("errno").EPIPE
    for fd in (r, back_r, back_w):
        os.close(fd)


def test_fork_exit_stamps_the_child_first_run(native) -> None:  # noqa: ANN001
    import mmap

    ffi, lib = native
    shared = mmap.mmap(-1, 4096)
    stamp = ffi.cast("uint64_t *", ffi.from_buffer(shared))
    m = _meter(ffi, lib)
    assert lib.sl_fork_exit(m, lib.sl_now_ns() + 20_000_000, ffi.NULL, stamp) == 0
    assert m.units >= 1 and m.wake_n == m.units and m.wake_max > 0
    del stamp
    shared.close()


def test_mutex_excludes_and_every_contender_progresses(native) -> None:  # noqa: ANN001
    ffi, lib = native
    sh = ffi.new("sl_shared *")
    meters = [_meter(ffi, lib) for _ in range(3)]
    end = lib.sl_now_ns() + 100_000_000
    threads = [
        threading.Thread(target=lib.sl_mutex, args=(meters[i], end, sh, 256, 256)) for i in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert all(m.units > 0 for m in meters)
    assert sh.lock == 0  # released by its last holder


def test_bad_arguments_are_errors_not_crashes(native) -> None:  # noqa: ANN001
    ffi, lib = native
    m = _meter(ffi, lib)
    sh = ffi.new("sl_shared *")
    now = lib.sl_now_ns()
    assert lib.sl_fan_out(m, now, sh, 0, 40, 1, ffi.NULL, 0, 0, 0) < 0  # fan_out > 31
    assert lib.sl_cache(m, now, ffi.NULL, ffi.new("uint8_t[]", 64), 64, 0, 0) < 0  # stride 0
    assert lib.sl_affinity_churn(m, now, ffi.NULL, 1, ffi.NULL, 0, ffi.new("int *")) < 0
