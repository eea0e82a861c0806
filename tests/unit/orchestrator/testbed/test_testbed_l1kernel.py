"""l1kernel: module dependency order and .modinfo parsing."""

import json
import shutil
import subprocess

import pytest

from orchestrator.testbed.l1kernel import (
    L1_MODULES,
    L1KernelError,
    _load_manifest,
    _module_depends,
    module_load_order,
)
from tests.framework.prereq import missing

# The real dependency graph of the 6.12 bookworm-backports modules (from their .modinfo).
_DEPS = {
    "virtio_rng": [], "irqbypass": [], "kvm": ["irqbypass"], "ccp": [], "kvm_amd": ["kvm", "ccp"],
    "netfs": [], "9pnet": ["netfs"], "9pnet_virtio": ["9pnet"], "9p": ["9pnet", "netfs"],
}  # fmt: skip


def test_real_graph_gives_the_facts_order():
    assert module_load_order(L1_MODULES, _DEPS.__getitem__) == list(L1_MODULES)


def test_dependencies_come_first_even_if_asked_late():
    order = module_load_order(("9p", "kvm_amd"), _DEPS.__getitem__)
    assert order == ["netfs", "9pnet", "9p", "irqbypass", "kvm", "ccp", "kvm_amd"]
    for name in order:
        assert all(order.index(d) < order.index(name) for d in _DEPS[name])


def test_cycle_is_an_error():
    with pytest.raises(L1KernelError, match="cycle"):
        module_load_order(("a",), {"a": ["b"], "b": ["a"]}.__getitem__)


def _assemble(tmp_path, modinfo: bytes) -> bytes:
    if shutil.which("as") is None:
        missing("GNU as missing (apt-get install binutils)")
    src = tmp_path / "m.s"
    escaped = "".join(f"\\{b:03o}" for b in modinfo)
    src.write_text(f'.section .modinfo,"a"\n.ascii "{escaped}"\n')
    subprocess.run(["as", "-o", str(tmp_path / "m.o"), str(src)], check=True)
    return (tmp_path / "m.o").read_bytes()


def test_module_depends_from_modinfo(tmp_path):
    ko = _assemble(tmp_path, b"license=GPL\0depends=kvm,ccp\0name=kvm_amd\0")
    assert _module_depends(ko) == ["kvm", "ccp"]


def test_module_depends_empty_and_dashes(tmp_path):
    assert _module_depends(_assemble(tmp_path, b"depends=\0name=ccp\0")) == []
    assert _module_depends(_assemble(tmp_path, b"depends=kvm-amd\0")) == ["kvm_amd"]


def test_manifest_with_missing_files_is_not_a_cache_hit(tmp_path):
    meta = {"package": "p", "version": "1", "release": "r", "vmlinuz": "l1-r/vmlinuz"}
    meta |= {"modules": ["l1-r/modules/kvm.ko"], "wanted": list(L1_MODULES)}
    (tmp_path / "l1kernel.json").write_text(json.dumps(meta))
    assert _load_manifest(tmp_path) is None
    (tmp_path / "l1-r/modules").mkdir(parents=True)
    (tmp_path / "l1-r/vmlinuz").write_bytes(b"k")
    (tmp_path / "l1-r/modules/kvm.ko").write_bytes(b"m")
    k = _load_manifest(tmp_path)
    assert k is not None and k.modules == (tmp_path / "l1-r/modules/kvm.ko",)
    (tmp_path / "l1kernel.json").write_text("{not json")
    assert _load_manifest(tmp_path) is None


def test_manifest_for_another_module_set_is_not_a_cache_hit(tmp_path):
    (tmp_path / "l1-r/modules").mkdir(parents=True)
    (tmp_path / "l1-r/vmlinuz").write_bytes(b"k")
    meta = {
        "package": "p",
        "version": "1",
        "release": "r",
        "vmlinuz": "l1-r/vmlinuz",
        "modules": [],
    }
    (tmp_path / "l1kernel.json").write_text(json.dumps({**meta, "wanted": ["kvm"]}))
    assert _load_manifest(tmp_path) is None
    (tmp_path / "l1kernel.json").write_text(json.dumps(meta))
    assert _load_manifest(tmp_path) is None
