from dataclasses import dataclass

import pytest

from orchestrator.engine_choice import EngineChoiceError, choose_engine


@dataclass
class P:
    kind: str
    reason: str = "r"


def test_auto_prefers_kvm_only_on_hardware() -> None:
    assert choose_engine("auto", lambda: P("hardware")).engine == "kvm"
    c = choose_engine("auto", lambda: P("emulated"))
    assert (c.engine, c.qemu_accel) == ("qemu", "tcg") and "auto" in c.reason
    assert choose_engine("auto", lambda: P("unavailable")).engine == "qemu"


def test_explicit_choices() -> None:
    assert choose_engine("qemu", lambda: P("hardware")).qemu_accel == "kvm"
    assert choose_engine("kvm", lambda: P("emulated")).engine == "kvm"
    with pytest.raises(EngineChoiceError, match="not usable"):
        choose_engine("kvm", lambda: P("unavailable"))
    with pytest.raises(EngineChoiceError, match="choose one of"):
        choose_engine("xen", lambda: P("hardware"))
