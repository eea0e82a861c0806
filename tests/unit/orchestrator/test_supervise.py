"""A real supervisord: programs start, restart after SIGKILL, and all stop with it."""

import os
import signal
import sys
import time
from pathlib import Path

from orchestrator.supervise import Program, Supervisor


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
    script = (f"import os, time; os.write(os.open({str(marker)!r}, os.O_WRONLY | os.O_APPEND | os.O_CREAT), b'x');"
              " time.sleep(600)")
    sup = Supervisor(rt, tmp_path, [
        Program("sleeper", [sys.executable, "-c", script], tmp_path / "s.log"),
        Program("once", [sys.executable, "-c", "import time; time.sleep(600)"], tmp_path / "o.log", restart=False),
    ])
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
    finally:
        sup.shutdown()
    assert not _alive(pid2)
