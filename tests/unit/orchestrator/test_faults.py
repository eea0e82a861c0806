import pytest

from orchestrator.faults import Fault, FaultError, parse_fault


def test_parse() -> None:
    assert parse_fault("kill:collector@1.5") == Fault("collector", 1.5)
    assert str(Fault("monitor", 2.0)) == "kill:monitor@2"


@pytest.mark.parametrize(
    "bad",
    ["kill:qemu@1", "stop:collector@1", "kill:collector", "kill:monitor@x", "kill:monitor@-1"],
)
def test_bad(bad: str) -> None:
    with pytest.raises(FaultError, match="--inject"):
        parse_fault(bad)


def test_parse_a_pause() -> None:
    f = parse_fault("pause:vm@1+1.2")
    assert f == Fault("vm", 1.0, 1.2) and str(f) == "pause:vm@1+1.2"


@pytest.mark.parametrize("bad", ["pause:vm@1", "pause:vm@1+0", "pause:vm@1+99", "pause:vmm@1+1"])
def test_bad_pause(bad: str) -> None:
    with pytest.raises(FaultError, match="--inject"):
        parse_fault(bad)
