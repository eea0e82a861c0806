"""Host-facing I/O threads of the init process: stdio capture and the control reader.

Split in two steps because of the worker parent: :meth:`HostIo.redirect_stdio` swaps fds 1
and 2 for pipes before it is forked (so workers' output is captured too), and :meth:`start`
starts the threads after (a process must not fork once it runs threads).
"""

from __future__ import annotations

import threading

from guest.channels import StdioCapture
from guest.control import ControlReader
from guest.dump import gather_dump
from guest.wire import FrameType

TYPE_CHECKING = False  # typing costs ~0.4 s of guest startup under TCG
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from guest.env import Env
    from guest.reporter import Reporter

__all__ = ("HostIo",)


class HostIo:
    """Stdio forwarders and the ``/dev/hvc0`` control reader.

    :param env: the init's environment (``pid1`` decides whether stdio is captured).
    :param out: where frames go.
    """

    def __init__(self, env: Env, out: Reporter) -> None:
        self._env = env
        self._out = out
        self.stop_requested = threading.Event()
        self._stdio: StdioCapture | None = None
        self._control: ControlReader | None = None
        #: answers a dump request (SysRq-D); the scheduler phase sets it to its own.
        self.sysrq_dump: Callable[[], None] | None = None

    def redirect_stdio(self) -> None:
        """Point fds 1 and 2 at capture pipes (PID 1 only); no thread yet."""
        if self._env.pid1 and self._out.bulk is not None:
            self._stdio = StdioCapture(self._out.bulk)
            self._stdio.redirect()

    def start(self) -> None:
        """Start the stdio forwarders and the control reader."""
        if self._stdio is not None:
            self._stdio.start()
        self._control = ControlReader(
            self._env.path("dev/hvc0"), self.stop_requested.set, self._sysrq, self._procdump
        )
        if not self._control.start():
            self._out.log("warning", f"no host control channel: {self._control.error}")

    def stop_control(self) -> None:
        """End the control reader (bounded)."""
        if self._control is not None:
            self._control.stop()

    def stop_stdio(self) -> None:
        """Flush and end the stdio forwarders (bounded)."""
        if self._stdio is not None:
            self._stdio.stop()

    def stats(self) -> dict[str, Any] | None:
        """Control reader counters (a spinning hvc0 shows here), None if it never started."""
        c = self._control
        if c is None:
            return None
        return {"polls": c.polls, "hangups": c.hangups, "unknown": c.unknown, "error": c.error}

    def _sysrq(self) -> None:
        """Answer a host dump request: SysRq-D (runs in the control thread)."""
        try:
            if self.sysrq_dump is not None:
                self.sysrq_dump()
            else:
                from guest.schedphase import sysrq_dump

                sysrq_dump(self._env, self._out, None)
        except Exception as e:  # a failed dump must not end the control thread
            self._out.log("warning", f"SysRq-D dump failed: {type(e).__name__}: {e}")

    def _procdump(self) -> None:
        """Answer a host /proc snapshot request (runs in the control thread)."""
        try:
            for source, data in gather_dump(self._env.root):
                self._out.send(FrameType.DUMP, {"source": source, "data": data})
        except Exception as e:  # a failed dump must not end the control thread
            self._out.log("warning", f"dump failed: {type(e).__name__}: {e}")
