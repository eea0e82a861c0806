import json
import os

import pytest

from schedlab_shared.kvm_probe import ProbeResult
from tests.framework.microguest import require_kvm
from vmm_proc import probe as probe_mod
from vmm_proc.probe import HARDWARE_MAX_NS, classify, probe


@pytest.mark.parametrize(
    ("ns", "kind"),
    [
        (0.5, "hardware"),  # bare-metal KVM (FACTS §3: 10M iterations in ~5 ms)
        (8.9, "hardware"),  # KVM inside QEMU TCG: real KVM semantics
        (HARDWARE_MAX_NS - 0.01, "hardware"),
        (HARDWARE_MAX_NS, "emulated"),
        (2100.0, "emulated"),  # the nested software hypervisor (21 s for 10M)
    ],
)
def test_classify_thresholds(ns, kind):
    result = classify(ns)
    assert result.kind == kind
    assert result.ns_per_iteration == ns
    assert f"{ns:.1f} ns" in result.reason


def test_classify_without_measurement_is_unavailable():
    result = classify(None, "/dev/kvm unusable: ENOENT")
    assert result == ProbeResult("unavailable", None, "/dev/kvm unusable: ENOENT")


def test_missing_kvm_device_reports_unavailable(monkeypatch):
    def no_kvm(*args, **kwargs):
        raise probe_mod.KvmError("open /dev/kvm", 2)

    monkeypatch.setattr(probe_mod, "MiniVm", no_kvm)
    result = probe()
    assert result.kind == "unavailable"
    assert "No such file" in result.reason


def test_main_prints_json(monkeypatch, capsys):
    monkeypatch.setattr(probe_mod, "probe", lambda: ProbeResult("emulated", 1234.5, "slow"))
    assert probe_mod.main(["--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "kind": "emulated",
        "ns_per_iteration": 1234.5,
        "reason": "slow",
    }


def test_main_prints_one_line(monkeypatch, capsys):
    monkeypatch.setattr(probe_mod, "probe", lambda: ProbeResult("hardware", 0.5, "fast"))
    assert probe_mod.main([]) == 0
    assert capsys.readouterr().out == "hardware: fast\n"


@pytest.mark.kvm
def test_probe_on_this_machine():
    require_kvm()
    result = probe()
    assert result.ns_per_iteration is not None and result.ns_per_iteration > 0
    if os.path.isdir("/sys/module/kvm_pvm"):
        # The dev machines' nested software hypervisor emulates CPL0 (FACTS §1).
        assert result.kind == "emulated", result
    else:
        assert result.kind in ("hardware", "emulated")
        assert (result.kind == "hardware") == (result.ns_per_iteration < HARDWARE_MAX_NS)
