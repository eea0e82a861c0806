"""Tier 2: vmm_proc's snapshot request and its restore start, with the KVM engine running
the counter micro-guest (test_kvm_snapshot_microguest.py).

A restored VM's streams must read exactly like the booted one's: the bytes written before
the snapshot are replayed first, the restored guest writes the rest. A damaged snapshot is
discarded and the VM boots cold, saying so.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path

import pytest
import zmq

from schedlab_shared.bus import vmm as proto
from schedlab_shared.bus.client import BusClient
from schedlab_shared.topology import Topology
from schedlab_shared.vm_config import VmConfig
from tests.framework.microguest import assemble, require_kvm, require_tools
from tests.integration.functional.test_kvm_snapshot_microguest import COUNTER, ROUNDS
from vmm_proc import service as service_mod
from vmm_proc.engines.kvm.boot_plan import RawBoot
from vmm_proc.engines.kvm.engine import KvmEngine
from vmm_proc.kvm.kick import install_kick_handler

pytestmark = pytest.mark.kvm

KEY = {"kernel": "counter", "schedlab": "test"}


def _config(**kw):  # noqa: ANN003, ANN202
    return VmConfig(
        run_id=f"t{uuid.uuid4().hex[:10]}", engine="kvm", kernel="", initrd="", cmdline="",
        topology=Topology(1, 1, 1, 1), mem_mib=16, timeout_s=60, **kw,
    )  # fmt: skip


@pytest.fixture
def services(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    require_kvm()
    require_tools()
    install_kick_handler()  # the service runs in a thread here; vmm_proc runs it in main
    code = assemble(COUNTER)

    def make(config, hooks, restore=None):  # noqa: ANN001, ANN202
        return KvmEngine(config, hooks, boot=RawBoot(code), restore=restore)

    monkeypatch.setattr(service_mod, "make_engine", make)
    ctx = zmq.Context()
    running = []

    def start(config: VmConfig):  # noqa: ANN202
        n = len(running)
        svc = service_mod.VmmService(
            config, f"ipc://{tmp_path}/ctl{n}", f"ipc://{tmp_path}/pub{n}", linger_s=30
        )
        t = threading.Thread(target=svc.run, kwargs={"install_signals": False})
        t.start()
        client = BusClient(ctx, f"ipc://{tmp_path}/ctl{n}", timeout_s=10)
        running.append((svc, t, client))
        return svc, client

    yield start
    for svc, t, client in running:
        svc._terminate = True
        t.join(15)
        client.close()
        assert not os.path.exists(svc.config.guest_ram_path)
    ctx.term()


def _console(client: BusClient) -> bytes:
    out, seq = [], 0
    while True:
        r = client.request(proto.Replay("console", seq))
        if not r.chunks:
            return b"".join(out)
        out += [d for _, d in r.chunks]
        seq = r.chunks[-1][0] + 1


def _wait_exit(client: BusClient, timeout: float = 60) -> proto.StatusReply:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = client.request(proto.Status_())
        if st.state == "exited":
            return st
        time.sleep(0.05)
    raise AssertionError("the VM did not exit")


def _snapshot_run(start, directory: str) -> bytes:  # noqa: ANN001
    _, client = start(_config())
    deadline = time.monotonic() + 10
    while client.request(proto.Status_()).streams["console"] < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    reply = client.request(proto.Snapshot(directory, KEY), timeout_s=30)
    assert reply.ok, reply.error
    assert 0 < reply.paused_ms < 10_000
    st = _wait_exit(client)
    assert st.exit_reason == "guest-exit", st.exit_detail
    full = _console(client)
    assert len(full) == ROUNDS + 9
    return full


def test_a_restored_vm_streams_what_the_booted_one_did(services, tmp_path) -> None:  # noqa: ANN001
    directory = str(tmp_path / "snap")
    full = _snapshot_run(services, directory)
    assert sorted(os.listdir(directory)) == ["memory", "state", "streams"]
    svc, client = services(_config(restore_dir=directory, snapshot_key=KEY))
    st = _wait_exit(client)
    assert st.exit_reason == "guest-exit", st.exit_detail
    assert [n for n in st.notes if n.startswith("start: restored from a snapshot in ")], st.notes
    assert _console(client) == full  # replayed prefix + the restored guest's own output
    assert os.path.isdir(directory)  # a good snapshot stays for the next run


def test_a_damaged_snapshot_is_discarded_and_the_vm_boots_cold(services, tmp_path) -> None:  # noqa: ANN001
    directory = str(tmp_path / "snap")
    full = _snapshot_run(services, directory)
    os.truncate(os.path.join(directory, "memory"), 4096)
    _, client = services(_config(restore_dir=directory, snapshot_key=KEY))
    st = _wait_exit(client)
    assert st.exit_reason == "guest-exit", st.exit_detail
    note = next(n for n in st.notes if n.startswith("start: cold boot"))
    assert "refused and discarded" in note and "memory image has 4096 bytes" in note
    assert _console(client) == full  # the cold boot ran the whole guest
    assert not os.path.exists(directory)


def test_snapshot_is_refused_when_the_vm_does_not_run(services, tmp_path) -> None:  # noqa: ANN001
    directory = str(tmp_path / "snap")
    _snapshot_run(services, str(tmp_path / "first"))
    svc, client = services(_config())
    _wait_exit(client)
    with pytest.raises(Exception) as info:
        client.request(proto.Snapshot(directory, KEY))
    assert "exited" in str(info.value)
    assert not os.path.exists(directory)
