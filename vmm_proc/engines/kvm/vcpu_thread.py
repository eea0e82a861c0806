"""One thread per vCPU, an explicit ``PAUSED -> RUNNING -> (EXITED) -> FINISHED`` machine.

The engine talks to the thread only through ``VcpuEvent``/``VcpuReply`` messages. To get a
thread out of ``KVM_RUN`` it is *kicked*: ``immediate_exit`` is set in its ``kvm_run`` page,
then a signal is sent to it, so ``KVM_RUN`` returns EINTR whether the thread was inside the
ioctl or about to enter it (Documentation/virt/kvm/api.rst, "immediate_exit").
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Protocol

from schedlab_shared.bus.vmm import ExitReason
from vmm_proc.engines.kvm.vcpu_control import (
    VcpuEvent,
    VcpuReply,
    VcpuResponse,
    VcpuState,
    VcpuStop,
)
from vmm_proc.kvm.exits import Interrupted, VcpuExit
from vmm_proc.kvm.kick import kick

__all__ = ("VcpuRunPort", "VcpuThread", "VcpuThreadError")

log = logging.getLogger(__name__)


class VcpuThreadError(Exception):
    """A vCPU thread did not answer or finish in time; the message names it and its state."""


class VcpuRunPort(Protocol):
    """What the thread needs from a vCPU (a ``VcpuFd``): KVM_RUN and ``immediate_exit``."""

    immediate_exit: bool

    def run(self) -> VcpuExit:
        """One KVM_RUN: the exit, or ``Interrupted()`` on EINTR (clearing immediate_exit)."""


Dispatch = Callable[[VcpuExit], VcpuStop | None]
OnStop = Callable[[int, VcpuStop], None]


class VcpuThread:
    """Owns the thread running one vCPU; controlled by ``send`` and ended by ``finish``.

    :param index: vCPU index; the thread is named ``vcpu<index>``.
    :param port: the vCPU.
    :param dispatch: handles one exit; returns a ``VcpuStop`` when the vCPU must stop.
    :param on_stop: called once from this thread when it leaves ``RUNNING`` for ``EXITED``.

    ``vmm_proc.kvm.kick.install_kick_handler()`` must have run before the first ``send``.
    """

    def __init__(
        self,
        index: int,
        port: VcpuRunPort,
        dispatch: Dispatch,
        on_stop: OnStop,
    ) -> None:
        self.index = index
        self.state = VcpuState.PAUSED
        self.stop_cause: VcpuStop | None = None
        self.exits = 0
        self._port = port
        self._dispatch = dispatch
        self._on_stop = on_stop
        self._events: queue.SimpleQueue[tuple[VcpuEvent, queue.SimpleQueue[VcpuReply]]] = (
            queue.SimpleQueue()
        )
        # Held while signalling, and by the thread when it leaves: a signal never targets
        # a thread that has already returned (pthread_kill on a dead thread is undefined).
        self._alive_lock = threading.Lock()
        self._alive = False
        self._thread = threading.Thread(target=self._main, name=f"vcpu{index}", daemon=True)

    # -- control side (any thread but this one) ---------------------------------------------

    @property
    def native_id(self) -> int | None:
        """The kernel's thread id of this vCPU (None before start)."""
        return self._thread.native_id

    def start(self) -> None:
        """Start the thread in ``PAUSED``; ``send(RESUME)`` makes it run the guest."""
        self._alive = True
        self._thread.start()

    def send(self, event: VcpuEvent, timeout: float = 2.0) -> VcpuReply:
        """Deliver ``event``, kick the thread and wait for its reply.

        :raises VcpuThreadError: no reply within ``timeout`` seconds.
        """
        if self.state is VcpuState.FINISHED and not self._thread.is_alive():
            return VcpuReply(VcpuResponse.NOT_ALLOWED, f"vcpu{self.index} has finished")
        box: queue.SimpleQueue[VcpuReply] = queue.SimpleQueue()
        self._events.put((event, box))
        self.kick()
        try:
            return box.get(timeout=timeout)
        except queue.Empty:
            raise VcpuThreadError(
                f"vcpu{self.index} did not answer {event.value} within {timeout}s "
                f"(state {self.state.value})"
            ) from None

    def kick(self) -> None:
        """Force the thread out of ``KVM_RUN`` soon (a no-op once it has returned)."""
        with self._alive_lock:
            if not self._alive or self._thread.ident is None:
                return
            kick(self._port, self._thread.ident)  # type: ignore[arg-type]

    def finish(self, timeout: float = 5.0) -> None:
        """Send ``FINISH`` (unless finished) and join.

        :raises VcpuThreadError: the thread is still alive after ``timeout`` seconds.
        """
        if self._thread.is_alive():
            try:
                self.send(VcpuEvent.FINISH, timeout=timeout)
            except VcpuThreadError:
                pass  # reported below by the join check, with the state
        self.join(timeout)

    def join(self, timeout: float) -> None:
        """Join the thread; fail loudly rather than hang."""
        if self._thread.ident is None:
            return
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise VcpuThreadError(
                f"vcpu{self.index} still alive {timeout}s after FINISH (state {self.state.value})"
            )

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # -- the thread ---------------------------------------------------------------------------

    def _main(self) -> None:
        handlers = {
            VcpuState.PAUSED: self._paused,
            VcpuState.RUNNING: self._running,
            VcpuState.EXITED: self._exited,
        }
        try:
            while self.state is not VcpuState.FINISHED:
                self.state = handlers[self.state]()
        except BaseException as exc:  # the thread boundary: report, never die silently
            log.exception("vcpu%d thread failed", self.index)
            self._stop(VcpuStop(ExitReason.ERROR, f"vcpu{self.index} thread failed: {exc!r}"))
            self.state = VcpuState.FINISHED
        finally:
            with self._alive_lock:
                self._alive = False
            self._drain_events()

    def _paused(self) -> VcpuState:
        event, box = self._events.get()
        match event:
            case VcpuEvent.RESUME:
                box.put(VcpuReply(VcpuResponse.RESUMED))
                return VcpuState.RUNNING
            case VcpuEvent.FINISH:
                box.put(VcpuReply(VcpuResponse.FINISHED))
                return VcpuState.FINISHED
            case _:
                box.put(VcpuReply(VcpuResponse.NOT_ALLOWED, "already paused"))
                return VcpuState.PAUSED

    def _exited(self) -> VcpuState:
        event, box = self._events.get()
        if event is VcpuEvent.FINISH:
            box.put(VcpuReply(VcpuResponse.FINISHED))
            return VcpuState.FINISHED
        detail = self.stop_cause.detail if self.stop_cause else "?"
        box.put(VcpuReply(VcpuResponse.NOT_ALLOWED, f"vcpu{self.index} has exited: {detail}"))
        return VcpuState.EXITED

    def _running(self) -> VcpuState:
        if self._events.empty():  # the common case, without raising queue.Empty per exit
            return self._run_guest()
        try:
            event, box = self._events.get_nowait()
        except queue.Empty:
            return self._run_guest()
        match event:
            case VcpuEvent.PAUSE:
                self._complete_pending_io()
                box.put(VcpuReply(VcpuResponse.PAUSED))
                return VcpuState.PAUSED
            case VcpuEvent.FINISH:
                box.put(VcpuReply(VcpuResponse.FINISHED))
                return VcpuState.FINISHED
            case _:
                box.put(VcpuReply(VcpuResponse.NOT_ALLOWED, "already running"))
                return VcpuState.RUNNING

    def _complete_pending_io(self) -> None:
        # An I/O or MMIO exit is finished by KVM only on the next KVM_RUN; with immediate_exit
        # set that run completes it and returns EINTR at once, so a paused vCPU's state is
        # whole (api.rst, KVM_EXIT_IO: "userspace should ensure that the operation is
        # completed" before saving state).
        self._port.immediate_exit = True
        try:
            self._port.run()
        except Exception as exc:  # the next RUNNING step reports a broken vCPU
            log.warning("vcpu%d: completing I/O before pause: %s", self.index, exc)
        finally:
            self._port.immediate_exit = False

    def _run_guest(self) -> VcpuState:
        try:
            exit_ = self._port.run()
        except Exception as exc:  # a KvmError other than EINTR: this vCPU cannot go on
            return self._stop(VcpuStop(ExitReason.ERROR, f"vcpu{self.index}: KVM_RUN: {exc}"))
        if isinstance(exit_, Interrupted):
            return VcpuState.RUNNING  # the next _running() looks at the control queue
        self.exits += 1
        try:
            stop = self._dispatch(exit_)
        except Exception as exc:  # a device model bug must stop the VM, not kill the thread
            log.exception("vcpu%d: exit handler failed on %r", self.index, exit_)
            stop = VcpuStop(ExitReason.ERROR, f"vcpu{self.index}: exit handler failed: {exc!r}")
        return self._stop(stop) if stop is not None else VcpuState.RUNNING

    def _stop(self, stop: VcpuStop) -> VcpuState:
        if self.stop_cause is None:
            self.stop_cause = stop
            self._on_stop(self.index, stop)
        return VcpuState.EXITED

    def _drain_events(self) -> None:
        # Requests that raced with the thread's end still get an answer.
        while True:
            try:
                _, box = self._events.get_nowait()
            except queue.Empty:
                return
            box.put(VcpuReply(VcpuResponse.FINISHED))
