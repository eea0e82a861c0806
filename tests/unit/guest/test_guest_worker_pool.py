"""The worker parent and its client: real forks, real pipes, real signals."""

import os
import signal
import threading
import time

import pytest

from guest import worker_parent, worktypes
from guest.worker_pool import WorkerError, WorkerPool


def _sleeper(args, stopped):
    while not stopped():
        time.sleep(0.01)
    return {"slept": True, "pid": os.getpid()}


def _segv(args, stopped):
    import ctypes

    ctypes.string_at(0)


def _raise(args, stopped):
    raise RuntimeError("work type exploded")


def _huge(args, stopped):
    return {"blob": b"x" * (worker_parent.REPORT_CAP + 1)}


def _fd_count(args, stopped):
    return {"fds": sorted(int(n) for n in os.listdir("/proc/self/fd"))}


@pytest.fixture
def pool(monkeypatch):
    for name, fn in (
        ("sleep", _sleeper),
        ("segv", _segv),
        ("raise", _raise),
        ("huge", _huge),
        ("fds", _fd_count),
    ):
        monkeypatch.setitem(worktypes.KINDS, name, fn)  # before the fork: the parent has them
    p = WorkerPool.fork(single_threaded=False)
    yield p
    p.close()


def wait_for(pool, n, timeout_s=10.0):
    got, end = [], time.monotonic() + timeout_s
    while len(got) < n and time.monotonic() < end:
        got += pool.wait_ended(0.1)
    return got


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_workers_wait_at_the_gate_then_report(pool):
    pids = [pool.spawn("spin", {"cgroup": "cg0", "duration_s": 0.05}) for _ in range(3)]
    assert pool.wait_ended(0.4) == []  # 0.05 s of work, but nobody started them
    assert pool.start() == 3
    ended = wait_for(pool, 3)
    assert sorted(e["pid"] for e in ended) == sorted(pids)
    for e in ended:
        assert e["exit"] == "exit 0" and e["error"] == ""
        assert e["report"]["pid"] == e["pid"] and e["report"]["work_units"] > 0
    assert not any(alive(p) for p in pids)  # reaped by the worker parent
    assert pool.start() == 0  # a new, empty batch


def test_sigterm_gives_a_partial_report(pool):
    pid = pool.spawn("sleep", {})
    pool.start()
    time.sleep(0.1)
    assert pool.signal(signal.SIGTERM) == 1
    (e,) = wait_for(pool, 1)
    assert e["pid"] == pid and e["report"] == {"slept": True, "pid": pid}


def test_a_signal_can_name_its_workers(pool):
    a, b = pool.spawn("sleep", {}), pool.spawn("sleep", {})
    pool.start()
    assert pool.signal(signal.SIGTERM, pids=[b, 999999]) == 1  # not ours: skipped
    (e,) = wait_for(pool, 1)
    assert e["pid"] == b and alive(a)
    assert pool.signal(signal.SIGTERM, pids=[b]) == 0  # reaped already: never signalled again
    assert pool.signal(signal.SIGTERM, pids=[a]) == 1
    assert [e["pid"] for e in wait_for(pool, 1)] == [a]


def test_sigterm_before_start_still_reports(pool):
    pid = pool.spawn("sleep", {})
    assert pool.signal(signal.SIGTERM) == 1  # the worker waits at the gate
    pool.start()
    (e,) = wait_for(pool, 1)
    assert e["pid"] == pid and e["report"]["slept"] is True


def test_failing_workers_are_reported_with_how_they_ended(pool):
    pids = {pool.spawn(k, {}): k for k in ("segv", "raise", "huge")}
    pool.start()
    by_kind = {pids[e["pid"]]: e for e in wait_for(pool, 3)}
    assert by_kind["segv"]["exit"] == "killed by SIGSEGV"
    assert by_kind["segv"]["report"] is None and by_kind["segv"]["error"] == "no report"
    assert by_kind["raise"]["error"] == "RuntimeError: work type exploded"
    assert by_kind["raise"]["exit"] == "exit 0"
    assert by_kind["huge"]["error"] == f"report over {worker_parent.REPORT_CAP} bytes"


def test_workers_hold_only_their_own_fds(pool):
    for _ in range(3):
        pool.spawn("fds", {})
    pool.start()
    for e in wait_for(pool, 3):
        fds = e["report"]["fds"]
        # 0-2, its report pipe, the listdir's own fd: no other worker's pipe, no init fd
        assert fds[:3] == [0, 1, 2] and len(fds) == 5, fds


def test_unknown_work_type_and_bad_signal_are_refused(pool):
    with pytest.raises(WorkerError, match="unknown work type 'nope'"):
        pool.spawn("nope", {})
    with pytest.raises(WorkerError, match="bad signal"):
        pool._request({"op": "signal", "sig": "TERM"}, "signalled")
    assert pool.spawn("spin", {"duration_s": 0.01}) > 0  # still serving


def test_close_kills_and_reaps_everything(pool):
    pids = [pool.spawn("sleep", {}) for _ in range(2)]
    pool.start()
    stats = pool.close()
    assert stats == {"spawned": 2, "killed": 2, "exit": "exit 0"}
    assert not any(alive(p) for p in pids) and not alive(pool.pid)
    with pytest.raises(WorkerError, match="closed"):
        pool.spawn("spin", {})


def test_init_death_ends_the_parent_and_its_workers():
    r, w = os.pipe()
    init = os.fork()
    if init == 0:  # a stand-in for the init process: spawn, then die without a word
        try:
            os.close(r)
            p = WorkerPool.fork(single_threaded=False)
            pids = [p.pid] + [p.spawn("spin", {"duration_s": 60.0}) for _ in range(2)]
            p.start()
            os.write(w, " ".join(map(str, pids)).encode())
        finally:
            os.kill(os.getpid(), signal.SIGKILL)
    os.close(w)
    pids = [int(x) for x in os.read(r, 256).split()]
    os.close(r)
    os.waitpid(init, 0)
    assert len(pids) == 3
    end = time.monotonic() + 10
    while any(alive(p) for p in pids) and time.monotonic() < end:
        time.sleep(0.02)
    assert not any(alive(p) for p in pids)


def test_fork_refuses_a_threaded_process():
    stop = threading.Event()
    t = threading.Thread(target=stop.wait, name="busy")
    t.start()
    try:
        with pytest.raises(WorkerError, match="before any thread starts.*busy"):
            WorkerPool.fork()
    finally:
        stop.set()
        t.join()
