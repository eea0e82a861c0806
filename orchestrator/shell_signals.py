"""What SIGINT, SIGQUIT and SIGTERM do to a ``schedlab shell`` session.

``--exec CMD``: the first Ctrl-C (SIGINT; Ctrl-\\ SIGQUIT) once CMD runs is CMD's, as if it
ran here: it goes to CMD's process group in the guest, and the session ends when CMD does,
with CMD's status (130 when SIGINT killed it), the VM shut down as after any exit. A second
one while CMD still runs, one before CMD started or after it ended, and SIGTERM stop the VM
(exit 130). Interactive, the raw terminal makes Ctrl-C a key for the guest's pty; a signal
sent to schedlab stops the VM. Once stopping, further signals are ignored: the teardown is
bounded and must finish, or something would be left behind.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

__all__ = ("FORWARDED", "SessionSignals")

#: Signals an ``--exec`` session passes to the guest command (once).
FORWARDED = (signal.SIGINT, signal.SIGQUIT)
_HANDLED = (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM)


class SessionSignals:
    """The session's handler for :data:`_HANDLED`.

    :param forward: ``--exec``: pass the first :data:`FORWARDED` signal to the command.
    :param relay: the session's relay once it exists (its :meth:`interrupt` forwards).
    """

    def __init__(self, forward: bool, relay: Callable[[], Any]) -> None:
        self.forward = forward
        self._relay = relay
        self.forwarded = 0  # the signal passed to the command, 0 if none
        self.stopping = False

    def __call__(self, signum: int, _frame: FrameType | None) -> None:
        if self.stopping:
            return  # the teardown is under way: let it finish
        relay = self._relay()
        if (
            self.forward
            and signum in FORWARDED
            and not self.forwarded
            and relay is not None
            and relay.interrupt(signum)
        ):
            self.forwarded = signum
            return
        self.stopping = True
        raise KeyboardInterrupt  # the session's orderly teardown, exit 130

    @contextmanager
    def installed(self) -> Iterator[SessionSignals]:
        """The handler in place for the block, the previous ones back after it."""
        old = {s: signal.signal(s, self) for s in _HANDLED}
        try:
            yield self
        finally:
            for s, h in old.items():
                signal.signal(s, h)
