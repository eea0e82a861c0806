import signal
import threading

import pytest

from vmm_proc.kvm import kick as kick_mod


@pytest.fixture
def restore_handler():
    previous = signal.getsignal(kick_mod.KICK_SIGNAL)
    yield
    signal.signal(kick_mod.KICK_SIGNAL, previous)


def test_install_is_idempotent(restore_handler):
    kick_mod.install_kick_handler()
    kick_mod.install_kick_handler()
    assert signal.getsignal(kick_mod.KICK_SIGNAL) is kick_mod._ignore


def test_install_refused_off_main_thread_until_installed(restore_handler):
    signal.signal(kick_mod.KICK_SIGNAL, signal.SIG_DFL)
    errors = []

    def body():
        try:
            kick_mod.install_kick_handler()
        except RuntimeError as e:
            errors.append(e)

    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert len(errors) == 1 and "main thread" in str(errors[0])
    kick_mod.install_kick_handler()
    t = threading.Thread(target=body)  # once installed, asking again from anywhere is fine
    t.start()
    t.join()
    assert len(errors) == 1


def test_kick_without_handler_is_refused(restore_handler):
    signal.signal(kick_mod.KICK_SIGNAL, signal.SIG_DFL)

    class FakeVcpu:
        immediate_exit = False

    vcpu = FakeVcpu()
    with pytest.raises(RuntimeError, match="install_kick_handler"):
        kick_mod.kick(vcpu, threading.get_ident())  # would kill us if it signalled
    assert vcpu.immediate_exit is False


def test_kick_sets_immediate_exit_and_signals(restore_handler):
    kick_mod.install_kick_handler()

    class FakeVcpu:
        immediate_exit = False

    vcpu = FakeVcpu()
    kick_mod.kick(vcpu, threading.get_ident())  # signalling ourselves is harmless now
    assert vcpu.immediate_exit is True
