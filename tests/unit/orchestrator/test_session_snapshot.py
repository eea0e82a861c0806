"""RunSession's snapshot plan: restore from a usable cached snapshot, else take one at
SYS_RDY; a failed snapshot is a note, never a failed run."""

from pathlib import Path
from types import SimpleNamespace

import pytest

from orchestrator import snapshot_cache
from orchestrator.request import Hooks, RunRequest, VmShape
from orchestrator.result import RunOutcome
from orchestrator.session import RunSession
from schedlab_shared.bus import vmm as vmm_proto
from schedlab_shared.bus.codec import BusError, Status
from schedlab_shared.topology import Topology


class FakeVmm:
    def __init__(self, reply):
        self.reply = reply
        self.asked = []

    def request(self, msg, timeout_s=None):
        self.asked.append(msg)
        if isinstance(self.reply, Exception):
            raise self.reply
        return self.reply


def _session(tmp_path, engine="kvm", snapshots=True, hooks=None):
    (tmp_path / "vmlinux").write_bytes(b"k")
    (tmp_path / "initrd").write_bytes(b"i")
    kernel = SimpleNamespace(vmlinux=tmp_path / "vmlinux", vmlinuz=tmp_path / "vmlinuz")
    vm = VmShape(engine, "", kernel, tmp_path / "initrd", Topology(1, 1, 2, 1))
    s = RunSession.__new__(RunSession)
    s.req = RunRequest(vm=vm, hooks=hooks or Hooks(), snapshots=snapshots)
    s._snapshot_to, s._snapshot_key = None, {}
    s.outcome = RunOutcome("kvm", "", {}, {}, tmp_path)
    return s


@pytest.fixture(autouse=True)
def snaps(tmp_path, monkeypatch):
    monkeypatch.setenv(snapshot_cache.ROOT_ENV, str(tmp_path / "snaps"))
    return tmp_path / "snaps"


def test_a_miss_plans_a_snapshot_and_a_hit_restores(tmp_path):
    s = _session(tmp_path)
    assert s._snapshot_plan() == {}
    target = s._snapshot_to
    assert target is not None and target.parent == tmp_path / "snaps"
    target.mkdir(parents=True)
    for name in snapshot_cache.SNAPSHOT_FILES:
        (target / name).write_bytes(b"x")
    again = _session(tmp_path)
    plan = again._snapshot_plan()
    assert plan["restore_dir"] == str(target) and plan["snapshot_key"] == s._snapshot_key
    assert again._snapshot_to is None


@pytest.mark.parametrize(
    "engine, snapshots, hooks",
    [("qemu", True, Hooks()), ("kvm", False, Hooks()), ("kvm", True, Hooks(truncate_image=9))],
)
def test_no_snapshot_without_kvm_or_when_not_asked(tmp_path, engine, snapshots, hooks):
    s = _session(tmp_path, engine, snapshots, hooks)
    assert s._snapshot_plan() == {} and s._snapshot_to is None


def test_taking_the_snapshot_notes_the_outcome(tmp_path):
    s = _session(tmp_path)
    s._snapshot_plan()
    s.vmm = FakeVmm(vmm_proto.SnapshotReply(True, 12.0))
    s._take_snapshot()
    assert isinstance(s.vmm.asked[0], vmm_proto.Snapshot) and s.vmm.asked[0].key
    assert s.outcome.engine_notes == ["snapshot: saved for the next runs (guest paused 12 ms)"]
    s._take_snapshot()  # only once per run
    assert len(s.vmm.asked) == 1


@pytest.mark.parametrize(
    "reply, note",
    [
        (vmm_proto.SnapshotReply(False, 0.0, "disk full"), "snapshot: not saved: disk full"),
        (BusError(Status.TIMEOUT, "no reply"), "snapshot: not saved: "),
    ],
)
def test_a_failed_snapshot_is_only_a_note(tmp_path, reply, note):
    s = _session(tmp_path)
    s._snapshot_plan()
    s.vmm = FakeVmm(reply)
    s._take_snapshot()
    assert s.outcome.engine_notes[0].startswith(note) and not s.outcome.errors
    assert not Path(s.vmm.asked[0].directory).exists()
