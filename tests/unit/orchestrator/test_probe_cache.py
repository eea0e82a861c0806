"""The KVM probe runs once per boot and /dev/kvm node; unclear answers are never kept."""

from __future__ import annotations

import os
from pathlib import Path

from orchestrator.probe_cache import cached_probe, probe_key
from schedlab_shared.kvm_probe import ProbeResult


class _Probe:
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.calls = 0

    def __call__(self) -> ProbeResult:
        self.calls += 1
        return ProbeResult(
            self.kind, 1959.2 if self.kind == "emulated" else None, f"{self.kind} here"
        )  # type: ignore[arg-type]


def test_a_definite_answer_is_reused_for_the_same_key(tmp_path: Path) -> None:
    store = tmp_path / "probe.json"
    probe = _Probe("emulated")
    first = cached_probe(probe, key="boot1:dev", store=store)
    again = cached_probe(probe, key="boot1:dev", store=store)
    assert probe.calls == 1
    assert (again.kind, again.ns_per_iteration) == (first.kind, first.ns_per_iteration)
    assert again.reason == "emulated here (probed earlier this boot)"


def test_a_new_boot_or_node_probes_again(tmp_path: Path) -> None:
    store = tmp_path / "probe.json"
    probe = _Probe("hardware")
    cached_probe(probe, key="boot1:dev", store=store)
    cached_probe(probe, key="boot2:dev", store=store)
    assert probe.calls == 2


def test_unavailable_is_never_cached(tmp_path: Path) -> None:
    store = tmp_path / "probe.json"
    probe = _Probe("unavailable")
    cached_probe(probe, key="k", store=store)
    cached_probe(probe, key="k", store=store)
    assert probe.calls == 2 and not store.exists()


def test_a_broken_store_is_a_miss(tmp_path: Path) -> None:
    store = tmp_path / "probe.json"
    store.write_text("{not json")
    probe = _Probe("emulated")
    assert cached_probe(probe, key="k", store=store).kind == "emulated" and probe.calls == 1


def test_key_covers_boot_node_and_user(tmp_path: Path) -> None:
    boot = tmp_path / "boot_id"
    boot.write_text("abc\n")
    dev = tmp_path / "kvm"
    dev.write_text("")
    key = probe_key(str(dev), str(boot))
    assert key is not None and key.startswith("abc:") and key.endswith(f":{os.getuid()}")
    assert str(dev.stat().st_ctime_ns) in key  # a chmod or a new node is a new key
    assert probe_key(str(tmp_path / "missing"), str(boot)) is None
