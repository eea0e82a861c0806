"""Fakes for guest/scx tests: a sysfs/tracefs/kmsg tree, a frame recorder, a fake kernel."""

import os
import select
import threading
import time
from pathlib import Path

from guest import wire

HERE = Path(__file__).resolve().parent


class FakeTree:
    """A filesystem root with sched_ext's sysfs, tracefs and a /dev/kmsg file."""

    def __init__(self, root: Path, sched_ext: bool = True) -> None:
        self.root = root
        self.scx = root / "sys/kernel/sched_ext"
        self.tracing = root / "sys/kernel/tracing"
        (root / "sys/kernel").mkdir(parents=True)
        (root / "dev").mkdir()
        (root / "proc/sys/kernel").mkdir(parents=True)
        (root / "dev/kmsg").write_text("")
        (root / "proc/sys/kernel/sysrq").write_text("0\n")
        if sched_ext:
            self.scx.mkdir()
            self.put("state", "disabled\n")
            event = self.tracing / "events/sched_ext/sched_ext_dump"
            event.mkdir(parents=True)
            (event / "enable").write_text("0\n")
            (self.tracing / "tracing_on").write_text("1\n")
            (self.tracing / "trace_pipe").write_text("")

    def put(self, rel: str, text: str) -> None:
        path = self.scx / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)

    def state(self) -> str:
        return (self.scx / "state").read_text().strip()

    def kmsg(self, text: str, prio: int = 6) -> None:
        with open(self.root / "dev/kmsg", "a") as f:
            f.write(f"{prio},1,{time.monotonic_ns() // 1000},-;{text}\n")

    def detach(self, name: str, reason: str = "unregistered from user space") -> None:
        self.put("state", "disabling\n")
        self.kmsg(f'sched_ext: BPF scheduler "{name}" disabled ({reason})')
        (self.scx / "root/ops").unlink(missing_ok=True)
        self.put("state", "disabled\n")


class Recorder:
    """A ``send`` that keeps frames, after checking each against the wire contract.

    The code under test swallows a failing send (it must not break the lifecycle), so a
    contract breach is kept in :attr:`errors`; the ``recorder`` fixture fails on any.
    """

    def __init__(self) -> None:
        self.frames: list[tuple[wire.FrameType, dict]] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, ftype, payload) -> bool:
        try:
            wire.decode_frame(wire.encode_frame(ftype, payload))
        except wire.WireError as e:
            with self._lock:
                self.errors.append(f"{ftype.name}: {e}")
            raise
        with self._lock:
            self.frames.append((ftype, payload))
        return True

    def of(self, ftype) -> list[dict]:
        with self._lock:
            return [p for t, p in self.frames if t is ftype]

    def types(self) -> list:
        with self._lock:
            return [t for t, _ in self.frames]

    def log(self, stream: str) -> bytes:
        return b"".join(
            p["data"] for p in self.of(wire.FrameType.SCHED_LOG) if p["stream"] == stream
        )


class FakeKernel:
    """Detaches the scheduler when its process dies, as closing the struct_ops link does."""

    def __init__(self, tree: FakeTree) -> None:
        self.tree = tree
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def follow(self, pid: int, name: str = "fake") -> None:
        fd = os.pidfd_open(pid)

        def run():
            try:
                p = select.poll()
                p.register(fd, select.POLLIN)
                while not self._stop.is_set():
                    if p.poll(20):
                        if self.tree.state() == "enabled":
                            self.tree.detach(name)
                        return
            finally:
                os.close(fd)

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
