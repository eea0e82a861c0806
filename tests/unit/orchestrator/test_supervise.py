"""A real supervisord: programs start, restart after SIGKILL, and all stop with it."""

import os
import signal
import sys
import time
from pathlib import Path

from orchestrator.supervise import Program, Supervisor, program_history


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait(pred, timeout=10.0):  # noqa: ANN001, ANN202
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_section_quotes_arguments() -> None:
    p = Program("x", ["/bin/echo", "a b", "50%", "it's"], Path("/tmp/x.log"))
    sec = p.section()
    assert "command='/bin/echo' 'a b' '50%%' 'it'\"'\"'s'" in sec
    assert "exitcodes=0,2,5" in sec and "autorestart=unexpected" in sec


def test_restart_after_kill_and_clean_shutdown(tmp_path: Path) -> None:
    rt = tmp_path / "rt"
    rt.mkdir()
    marker = tmp_path / "starts"
    script = (
        f"import os, time; os.write(os.open({str(marker)!r}, os.O_WRONLY | os.O_APPEND | os.O_CREAT), b'x');"
        " time.sleep(600)"
    )
    sup = Supervisor(
        rt,
        tmp_path,
        [
            Program("sleeper", [sys.executable, "-c", script], tmp_path / "s.log"),
            Program(
                "once",
                [sys.executable, "-c", "import time; time.sleep(600)"],
                tmp_path / "o.log",
                restart=False,
            ),
        ],
    )
    sup.start()
    try:
        sup.start_program("sleeper")
        sup.start_program("once")
        pid1 = _wait(lambda: sup.pid("sleeper"))
        once = sup.pid("once")
        _wait(lambda: marker.exists())
        assert sup.kill("sleeper") == pid1
        pid2 = _wait(lambda: (p := sup.pid("sleeper")) and p != pid1 and p)
        assert pid2 != pid1 and _wait(lambda: marker.read_text() == "xx")
        os.kill(once, signal.SIGKILL)
        _wait(lambda: sup.info("once")["statename"] == "EXITED")
        hist = sup.history()
        assert hist["sleeper"].restarts == 1 and hist["once"].restarts == 0
        assert not hist["sleeper"].gave_up
    finally:
        sup.shutdown()
    assert not _alive(pid2)


def test_autostart_in_priority_order_and_a_stop_that_does_not_wait_a_tick(tmp_path: Path) -> None:
    rt = tmp_path / "rt"
    rt.mkdir()
    order = tmp_path / "order"
    # Each program appends its name, then ends on SIGTERM like our processes do.
    script = (
        "import os, signal, sys, time; signal.signal(signal.SIGTERM, lambda *a: sys.exit(0));"
        f" os.write(os.open({str(order)!r}, os.O_WRONLY | os.O_APPEND | os.O_CREAT), sys.argv[1].encode());"
        " time.sleep(600)"
    )
    progs = [
        Program(
            name,
            [sys.executable, "-c", script, name],
            tmp_path / f"{name}.log",
            autostart=True,
            priority=prio,
        )
        for name, prio in (("b", 2), ("a", 1), ("c", 3))
    ]
    assert "autostart=true" in progs[0].section() and "priority=2" in progs[0].section()
    sup = Supervisor(rt, tmp_path, progs)
    sup.start()
    try:
        pids = [_wait(lambda n=n: sup.pid(n)) for n in ("a", "b", "c")]  # no start_program call
        _wait(lambda: order.exists() and len(order.read_text()) == 3)
        states = {sup.info(n)["statename"] for n in ("a", "b", "c")}
        assert states == {"RUNNING"}
    finally:
        sup.shutdown()
    assert not any(_alive(p) for p in pids)
    log = (tmp_path / "supervisord.log").read_text()
    assert log.index("spawned: 'a'") < log.index("spawned: 'b'") < log.index("spawned: 'c'")
    assert all(f"stopped: {n} (exit status 0)" in log for n in ("a", "b", "c"))


def test_program_history_counts_spawns_and_give_ups(tmp_path: Path) -> None:
    log = tmp_path / "supervisord.log"
    log.write_text(
        "2026-12-01 22:26:08,179 INFO supervisord started with pid 18630\n"
        "2026-12-01 22:26:08,188 INFO spawned: 'monitor' with pid 18631\n"
        "2026-12-01 22:26:08,189 INFO spawned: 'monitor1' with pid 18632\n"
        "2026-12-01 22:26:09,321 WARN exited: monitor1 (exit status 1; not expected)\n"
        "2026-12-01 22:26:10,325 INFO spawned: 'monitor1' with pid 18649\n"
        "2026-12-01 22:26:11,325 INFO gave up: monitor1 entered FATAL state, too many start retries too quickly\n"
        "2026-12-01 22:26:11,326 INFO spawned: 'x' with pid 1 and a torn li"
    )
    hist = program_history(log)
    assert (hist["monitor"].restarts, hist["monitor"].gave_up) == (0, False)
    assert (hist["monitor1"].spawns, hist["monitor1"].restarts, hist["monitor1"].gave_up) == (
        2,
        1,
        True,
    )
    assert "x" not in hist
    assert program_history(tmp_path / "missing.log") == {}
