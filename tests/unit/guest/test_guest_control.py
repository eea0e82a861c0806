"""hvc0 control reader: dispatch, and no spinning on a latched hangup."""

import os
import threading
import time

from guest.control import ControlReader


def wait_for(pred, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.01)
    return False


def test_dispatch_backoff_on_hangup_and_reconnect(tmp_path):
    fifo = tmp_path / "hvc0"
    os.mkfifo(fifo)
    shut, dumps = threading.Event(), []
    r = ControlReader(str(fifo), shut.set, lambda: dumps.append(1))
    assert r.start()
    try:
        fd = os.open(fifo, os.O_WRONLY)
        os.write(fd, b"xDS")
        assert wait_for(shut.is_set)
        assert dumps == [1] and r.unknown == 1
        os.close(fd)  # host gone: POLLHUP stays latched on the read end
        time.sleep(0.2)
        before = r.polls
        time.sleep(1.0)
        # Backing off (10 ms doubling to 1 s), not spinning: a handful of polls per second.
        assert r.polls - before <= 8, r.polls - before
        assert r.hangups >= 3
        fd = os.open(fifo, os.O_WRONLY)  # the host comes back
        os.write(fd, b"D")
        assert wait_for(lambda: len(dumps) == 2, timeout=3.0)
        os.close(fd)
    finally:
        r.stop()
    assert r.error == ""


def test_missing_device_reports_error(tmp_path):
    r = ControlReader(str(tmp_path / "nope"), lambda: None, lambda: None)
    assert not r.start()
    assert "nope" in r.error
    r.stop()  # no thread: returns at once


def test_stop_is_prompt(tmp_path):
    fifo = tmp_path / "hvc0"
    os.mkfifo(fifo)
    r = ControlReader(str(fifo), lambda: None, lambda: None)
    assert r.start()
    t0 = time.monotonic()
    r.stop()
    assert time.monotonic() - t0 < 1.0
    assert not r._thread.is_alive()
