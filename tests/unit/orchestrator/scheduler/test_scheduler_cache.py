"""The per-kernel build cache with a fake builder: hit, miss, stale, failure, concurrency."""

import json
import threading

import pytest
from conftest import FakeBuilder, make_kernel

from orchestrator.scheduler.cache import (
    MANIFEST,
    ensure_built,
    kernel_identity,
    list_built,
    load_built,
)
from orchestrator.scheduler.errors import SchedulerBuildError


def _leftovers(cache):
    top = cache / "schedulers"
    return (
        sorted(p.name for p in top.iterdir() if p.name.startswith(".tmp-")) if top.is_dir() else []
    )


def test_first_use_builds_then_hits(cache, tmp_path):
    kernel = make_kernel(tmp_path)
    fake = FakeBuilder()
    first = ensure_built(kernel, builder=fake)
    assert not first.hit and fake.calls == 1
    root = cache / "schedulers" / kernel.version
    assert first.root == root and (root / MANIFEST).is_file()
    qmap = first.schedulers["scx_qmap"]
    assert (
        qmap.path == root / "bin/scx_qmap" and qmap.ops == "qmap" and qmap.kernel == kernel.version
    )
    assert qmap.usage.option("-e").arg == "COUNT" and len(qmap.sha256) == 64
    manifest = json.loads((root / MANIFEST).read_text())
    assert manifest["kernel_id"] == kernel_identity(kernel)
    assert manifest["log"] == str(cache / "schedulers/logs" / f"{kernel.version}.log")
    second = ensure_built(kernel, builder=fake)
    assert second.hit and fake.calls == 1 and second.schedulers.keys() == first.schedulers.keys()
    assert load_built(kernel).hit and [c.kernel for c in list_built()] == [kernel.version]
    assert _leftovers(cache) == []


def test_force_rebuilds(cache, tmp_path):
    kernel = make_kernel(tmp_path)
    fake = FakeBuilder()
    ensure_built(kernel, builder=fake)
    again = ensure_built(kernel, builder=fake, force=True)
    assert not again.hit and fake.calls == 2 and _leftovers(cache) == []


def test_changed_kernel_or_damaged_cache_rebuilds(cache, tmp_path):
    fake = FakeBuilder()
    ensure_built(make_kernel(tmp_path, sha="ab" * 32), builder=fake)
    refetched = make_kernel(tmp_path, sha="cd" * 32)  # same version, other image
    assert load_built(refetched) is None
    assert not ensure_built(refetched, builder=fake).hit and fake.calls == 2
    (cache / "schedulers" / refetched.version / "bin/scx_simple").write_text("truncated")
    assert load_built(refetched) is None  # size no longer matches the manifest
    assert not ensure_built(refetched, builder=fake).hit and fake.calls == 3


def test_failed_build_leaves_nothing_but_its_log(cache, tmp_path):
    kernel = make_kernel(tmp_path)
    with pytest.raises(SchedulerBuildError) as err:
        ensure_built(kernel, builder=FakeBuilder(fail="scx_qmap.bpf.c:12:3: error: boom"))
    msg = str(err.value)
    log = cache / "schedulers/logs" / f"{kernel.version}.log"
    assert "\n" not in msg and "scx_qmap.bpf.c:12:3: error: boom" in msg and f"(log: {log})" in msg
    assert "error: boom" in log.read_text()
    assert not (cache / "schedulers" / kernel.version).exists() and _leftovers(cache) == []
    assert load_built(kernel) is None and list_built() == []


def test_failed_rebuild_keeps_nothing_stale(cache, tmp_path):
    kernel = make_kernel(tmp_path)
    ensure_built(kernel, builder=FakeBuilder())
    with pytest.raises(SchedulerBuildError):
        ensure_built(kernel, builder=FakeBuilder(fail="make: *** [Makefile:1] Error 2"), force=True)
    assert load_built(kernel) is not None  # the old complete build was not touched
    assert _leftovers(cache) == []


def test_builder_without_binary_fails(cache, tmp_path):
    class Liar(FakeBuilder):
        def build(self, kernel, out, work, log, progress):
            fields = super().build(kernel, out, work, log, progress)
            (out / "bin/scx_qmap").unlink()
            return fields

    with pytest.raises(SchedulerBuildError, match="no binary for scx_qmap"):
        ensure_built(make_kernel(tmp_path), builder=Liar())
    assert _leftovers(cache) == []


def test_concurrent_first_uses_build_once(cache, tmp_path):
    kernel = make_kernel(tmp_path)
    fake = FakeBuilder(delay=0.3)
    results, errors = [], []

    def use():
        try:
            results.append(ensure_built(kernel, builder=fake))
        except Exception as exc:  # noqa: BLE001 - reported by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=use) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert errors == [] and len(results) == 3
    assert fake.calls == 1 and sorted(r.hit for r in results) == [False, True, True]
    assert _leftovers(cache) == []


def test_odd_kernel_version_gets_a_safe_folder(cache, tmp_path):
    kernel = make_kernel(tmp_path, version="7.2.0 custom/../x")
    built = ensure_built(kernel, builder=FakeBuilder())
    assert built.root.parent == cache / "schedulers" and built.root.name.startswith("k-")
    assert built.kernel == "7.2.0 custom/../x"
