"""MonitorWatch against a fake supervisor and a real control server answering MonitorStatus."""

import threading
from pathlib import Path

import zmq

from orchestrator.monitor_watch import MAX_RESTARTS, MonitorWatch
from orchestrator.supervise import ProgramHistory
from schedlab_shared.bus import monitor as monitor_proto
from schedlab_shared.bus.server import ControlServer


class FakeSupervisor:
    def __init__(self) -> None:
        self.hist: dict[str, ProgramHistory] = {}
        self.stopped: list[str] = []

    def history(self) -> dict[str, ProgramHistory]:
        return dict(self.hist)

    def stop_program(self, name: str) -> None:
        self.stopped.append(name)


def _serve(ctx: zmq.Context, endpoint: str, stop: threading.Event) -> threading.Thread:
    def status(_msg):  # noqa: ANN001, ANN202
        return monitor_proto.MonitorStatusReply("sampling", 0, 7, "TranslationError: no kernel")

    server = ControlServer(ctx, endpoint, {monitor_proto.MonitorStatus: status})

    def loop() -> None:
        while not stop.is_set():
            if server.socket.poll(50):
                server.handle_ready()
        server.socket.close(0)

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    return t


def test_status_is_kept_and_a_crash_loop_is_stopped(tmp_path: Path) -> None:
    ctx = zmq.Context()
    stop = threading.Event()
    ep0, ep1 = f"ipc://{tmp_path}/m0", f"ipc://{tmp_path}/m1"
    server = _serve(ctx, ep0, stop)
    sup = FakeSupervisor()
    notes: list[str] = []
    watch = MonitorWatch(ctx, [ep0, ep1], sup, tmp_path, lambda _p, d: notes.append(d))  # type: ignore[arg-type]
    try:
        sup.hist = {
            "monitor": ProgramHistory(spawns=1),
            "monitor1": ProgramHistory(spawns=MAX_RESTARTS + 1),
        }
        (tmp_path / "monitor1_proc.log").write_text("Traceback ...\nValueError: not an ELF\n\n")
        watch.poll()
        assert sup.stopped == ["monitor1"] and "monitor1 restarted 5 times" in notes[0]
        watch.poll()  # rate limited, and a stopped monitor is not asked again
        assert sup.stopped == ["monitor1"]
        reports = watch.reports()
    finally:
        watch.close()
        stop.set()
        server.join()
        ctx.term()
    assert reports["monitor"].status == {
        "state": "sampling",
        "samples": 0,
        "errors": 7,
        "last_error": "TranslationError: no kernel",
    }
    assert (reports["monitor"].restarts, reports["monitor"].gave_up) == (0, False)
    assert (reports["monitor1"].restarts, reports["monitor1"].gave_up) == (MAX_RESTARTS, True)
    assert reports["monitor1"].last_log_line == "ValueError: not an ELF"
