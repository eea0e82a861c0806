"""Signals to ``schedlab shell``: under --exec the first Ctrl-C is the guest command's."""

from __future__ import annotations

import os
import signal

import pytest
import zmq

from guest import wire
from guest.wire import FrameType
from orchestrator.shell_relay import ShellRelay
from orchestrator.shell_signals import SessionSignals


class _Relay:
    def __init__(self, running: bool = True) -> None:
        self.running, self.sent = running, []

    def interrupt(self, sig: int) -> bool:
        if self.running:
            self.sent.append(sig)
        return self.running


def _deliver(sigs: SessionSignals, signum: int) -> None:
    with sigs.installed():
        os.kill(os.getpid(), signum)
        signal.sigtimedwait([], 0.05)  # let the handler run


def test_exec_forwards_the_first_interrupt_and_a_second_stops_the_vm():
    relay = _Relay()
    sigs = SessionSignals(forward=True, relay=lambda: relay)
    _deliver(sigs, signal.SIGINT)
    assert relay.sent == [signal.SIGINT] and sigs.forwarded == signal.SIGINT
    assert not sigs.stopping
    with pytest.raises(KeyboardInterrupt):
        _deliver(sigs, signal.SIGQUIT)
    assert relay.sent == [signal.SIGINT] and sigs.stopping
    _deliver(sigs, signal.SIGINT)  # the teardown runs on: ignored, no exception
    assert relay.sent == [signal.SIGINT]


@pytest.mark.parametrize(
    ("forward", "relay", "signum"),
    [
        (True, None, signal.SIGINT),  # before the relay exists (booting)
        (True, _Relay(running=False), signal.SIGINT),  # not started, or already exited
        (True, _Relay(), signal.SIGTERM),  # SIGTERM is never the command's
        (False, _Relay(), signal.SIGINT),  # interactive: a signal to us stops the VM
    ],
)
def test_the_other_cases_stop_the_vm(forward, relay, signum):
    sigs = SessionSignals(forward=forward, relay=lambda: relay)
    with pytest.raises(KeyboardInterrupt):
        _deliver(sigs, signum)
    assert sigs.stopping and not sigs.forwarded
    assert relay is None or relay.sent == []


def test_installed_puts_the_previous_handlers_back():
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM)}
    sigs = SessionSignals(forward=True, relay=lambda: None)
    with sigs.installed():
        assert signal.getsignal(signal.SIGINT) is sigs
    assert {s: signal.getsignal(s) for s in before} == before


class _Vmm:
    def __init__(self) -> None:
        self.written = b""

    def request(self, msg, timeout_s=None):  # noqa: ANN001, ANN201
        from types import SimpleNamespace

        self.written += msg.data
        return SimpleNamespace(accepted=len(msg.data))


def test_the_relay_sends_a_signal_frame_only_while_the_command_runs(tmp_path):
    ctx = zmq.Context()
    vmm = _Vmm()
    relay = ShellRelay(vmm, ctx, f"ipc://{tmp_path}/pub", "r", interactive=False, stdin=-1)
    try:
        assert relay.interrupt(signal.SIGINT) is False  # SHELL_READY not seen yet
        relay.ready = True
        assert relay.interrupt(signal.SIGINT) is True
        relay._flush()
        frames = list(wire.FrameDecoder(accept=wire.SHELL_TO_GUEST).feed(vmm.written))
        assert [(f.type, f.payload) for f in frames] == [
            (FrameType.SHELL_SIGNAL, {"signal": int(signal.SIGINT)})
        ]
        relay.exit = (-1, signal.SIGINT)
        assert relay.interrupt(signal.SIGINT) is False
    finally:
        relay.close()
        ctx.term()
