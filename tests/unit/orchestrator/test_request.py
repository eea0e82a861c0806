"""RunRequest: its four parts, the guest spec they make, the derived VM timeout."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import pytest

from guest import rundoc
from guest.spec import RunSpec, SpecError
from orchestrator.faults import Fault
from orchestrator.inputs import corrupted, prepare
from orchestrator.request import (
    BOOT_ALLOWANCE_S,
    STOP_GRACE_S,
    Hooks,
    RunRequest,
    Scenario,
    VerdictLimits,
    VmShape,
)
from orchestrator.session import _cmdline
from schedlab_shared.topology import Topology


def _vm(**kw):
    kernel = SimpleNamespace(vmlinuz=Path("/k/vmlinuz"), vmlinux=Path("/k/vmlinux"), version="7.2")
    base = dict(
        engine="qemu",
        engine_reason="test",
        kernel=kernel,
        initrd=Path("/i.cpio"),
        topology=Topology.parse("1,1,2,1"),
    )
    return VmShape(**{**base, **kw})


def test_parts_become_the_guest_spec():
    req = RunRequest(
        vm=_vm(),
        scenario=Scenario(duration_s=1.5, cgroups=3, workers=4),
        limits=VerdictLimits(fairness=0.5, max_gap_ms=250.0),
        hooks=Hooks(wire_noise=2, crash="init", faults=(Fault("collector", 1.0),)),
    )
    assert req.guest_spec() == RunSpec(
        scenario="cgroup-spinners",
        duration=1.5,
        cgroups=3,
        workers=4,
        fairness=0.5,
        max_gap_ms=250.0,
        wire_noise=2,
        crash="init",
    )


def test_defaults_are_the_guest_defaults():
    spec = RunRequest(vm=_vm()).guest_spec()
    defaults = RunSpec("cgroup-spinners")
    assert (spec.fairness, spec.max_gap_ms, spec.wire_noise, spec.crash) == (
        defaults.fairness,
        defaults.max_gap_ms,
        defaults.wire_noise,
        defaults.crash,
    )


def test_cmdline_is_the_kernels_own_and_short():
    req = RunRequest(
        vm=_vm(engine="kvm", extra_cmdline=("foo=1",)), scenario=Scenario(duration_s=0.5, workers=3)
    )
    line = _cmdline(req)
    words = line.split()
    assert "foo=1" in words and "quiet" in words  # kvm engine: quiet console
    assert "quiet" not in _cmdline(RunRequest(vm=_vm())).split()
    # The run spec travels in the run document over the bulk port, not here.
    assert not any(w.startswith("schedlab.") for w in words) and len(line) < 256


def test_vm_timeout_given_or_derived():
    req = RunRequest(vm=_vm(timeout_s=12.0))
    assert (req.run_timeout_s, req.vm_timeout_s) == (12.0, 12.0 + STOP_GRACE_S)
    # a given timeout counts from the VM's start, however late the guest is ready
    assert req.stop_at(1000.0, 1011.0) == 1012.0
    derived = RunRequest(vm=_vm(), scenario=Scenario(duration_s=10.0))
    assert derived.run_part_s == 10.0 * 3 + 30.0
    assert derived.run_timeout_s == BOOT_ALLOWANCE_S + derived.run_part_s
    # the VMM's backstop covers the latest graceful stop (SYS_RDY just before the first one)
    assert derived.vm_timeout_s == derived.run_timeout_s + derived.run_part_s + STOP_GRACE_S


def test_a_late_sys_rdy_moves_a_derived_stop_but_never_earlier():
    req = RunRequest(vm=_vm(), scenario=Scenario(duration_s=10.0))
    t0 = 1000.0
    assert req.stop_at(t0, None) == t0 + req.run_timeout_s  # not ready yet
    assert req.stop_at(t0, t0 + 5.0) == t0 + req.run_timeout_s  # a fast boot keeps it
    late = t0 + BOOT_ALLOWANCE_S + 40.0  # a nested-KVM boot that ate the allowance
    assert req.stop_at(t0, late) == late + req.run_part_s
    assert req.stop_at(t0, late) + STOP_GRACE_S <= t0 + req.vm_timeout_s  # before the backstop


def test_oops_panic_is_an_option_not_the_default():
    assert "oops=panic" not in _cmdline(RunRequest(vm=_vm())).split()
    assert "oops=panic" in _cmdline(RunRequest(vm=_vm(oops_panic=True))).split()


def test_corrupt_spec_hook_gives_a_document_the_guest_rejects():
    inputs = prepare(RunRequest(vm=_vm()).guest_spec())
    rundoc.validate(inputs.doc)  # the real one is good
    bad = corrupted(inputs)
    assert not bad.checked
    with pytest.raises(SpecError, match=r"hooks\.corrupt_spec_hook: unknown field"):
        rundoc.validate(bad.doc)


def test_a_bad_scenario_is_rejected_when_the_spec_is_built():
    with pytest.raises(SpecError, match="scenario.workers"):
        RunRequest(vm=_vm(), scenario=Scenario(workers=0)).guest_spec()


def test_parts_are_frozen():
    req = RunRequest(vm=_vm())
    with pytest.raises(dataclasses.FrozenInstanceError):
        req.scenario.duration_s = 9.0  # type: ignore[misc]
    assert req.vm_timeout_s > 0


def test_the_runs_files_lengthen_its_timeout(tmp_path):
    from orchestrator.inputs import HostFile
    from orchestrator.request import INPUTS_SLOW_BYTES_S

    blob = tmp_path / "sched"
    blob.write_bytes(b"x" * 100_000)
    bare = RunRequest(vm=_vm())
    with_file = RunRequest(vm=_vm(), files=(HostFile("scheduler", blob),))
    assert with_file.run_timeout_s - bare.run_timeout_s == 100_000 / INPUTS_SLOW_BYTES_S
