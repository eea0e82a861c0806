"""Module dependency resolution: synthetic .ko files (gcc-built .modinfo) and the real tree."""

import lzma
import shutil
import subprocess

import pytest

from orchestrator.kernel.modules import (
    ModuleError,
    ModuleIndex,
    decompress_module,
    module_name,
    read_modinfo,
    write_modules_dep,
)
from tests.framework.prereq import missing


def _ko(tmp_path, name, depends):
    if shutil.which("gcc") is None:
        missing("gcc missing: cannot build synthetic modules")
    src = tmp_path / f"{name}.c"
    src.write_text(
        f'__attribute__((section(".modinfo"), used)) static const char a[] = "name={name}";\n'
        f'__attribute__((section(".modinfo"), used)) static const char b[] = "depends={depends}";\n'
    )
    obj = tmp_path / f"{name}.o"
    subprocess.run(["gcc", "-c", "-o", str(obj), str(src)], check=True)
    return obj.read_bytes()


@pytest.fixture()
def tree(tmp_path):
    root = tmp_path / "mods"
    (root / "kernel/a").mkdir(parents=True)
    build = tmp_path / "build"
    build.mkdir()
    # c <- b <- a-top, and a-top also needs c directly; d is standalone.
    for rel, name, deps in (
        ("kernel/a/c.ko", "c", ""),
        ("kernel/a/b.ko.xz", "b", "c"),
        ("kernel/a/a-top.ko.xz", "a_top", "b,c"),
        ("kernel/d.ko", "d", ""),
    ):
        data = _ko(build, name, deps)
        (root / rel).write_bytes(
            lzma.compress(data, check=lzma.CHECK_CRC32) if rel.endswith(".xz") else data
        )
    (root / "modules.builtin").write_text("kernel/fs/ext4/ext4.ko\n")
    return root


def test_module_name():
    assert module_name("kernel/arch/x86/kvm/kvm-amd.ko.xz") == "kvm_amd"
    assert module_name("x.ko") == "x"


def test_modinfo_and_decompress(tmp_path):
    raw = _ko(tmp_path, "m", "p,q")
    assert read_modinfo(decompress_module(lzma.compress(raw)))["depends"] == "p,q"
    with pytest.raises(ModuleError, match="not an ELF"):
        decompress_module(b"hello")


def test_dep_file_and_load_order(tree):
    write_modules_dep(tree)
    lines = dict(ln.split(":", 1) for ln in (tree / "modules.dep").read_text().splitlines())
    assert lines["kernel/a/a-top.ko.xz"].split() == ["kernel/a/b.ko.xz", "kernel/a/c.ko"]
    assert lines["kernel/d.ko"].strip() == ""
    idx = ModuleIndex(tree)
    assert idx.load_order(["a-top"]) == [
        "kernel/a/c.ko",
        "kernel/a/b.ko.xz",
        "kernel/a/a-top.ko.xz",
    ]
    assert idx.load_order(["d", "b", "ext4"]) == [
        "kernel/d.ko",
        "kernel/a/c.ko",
        "kernel/a/b.ko.xz",
    ]
    assert read_modinfo(idx.read_plain("kernel/a/b.ko.xz"))["name"] == "b"


def test_unknown_and_builtin_names(tree):
    idx = ModuleIndex(tree)  # computes dependencies without writing into the tree
    assert not (tree / "modules.dep").exists()
    assert idx.load_order(["b"]) == ["kernel/a/c.ko", "kernel/a/b.ko.xz"]
    with pytest.raises(ModuleError, match="not found"):
        idx.path_of("nope")
    with pytest.raises(ModuleError, match="built into"):
        idx.path_of("ext4")
    with pytest.raises(ModuleError, match="outside"):
        idx.read_plain("../../etc/passwd")


def test_real_tree(real_vmlinuz):
    from orchestrator.kernel.resolve import resolve_kernel

    k = (
        resolve_kernel(str(real_vmlinuz))
        if "dev-kernel" in str(real_vmlinuz)
        else resolve_kernel(real_vmlinuz.parent.name)
    )
    mods = k.modules_dir or real_vmlinuz.parent
    if not (mods / "modules.dep").is_file():
        missing("real module tree has no modules.dep (dev copy is read-only input)")
    order = ModuleIndex(mods).load_order(["kvm-amd", "virtio_mmio"])
    names = [module_name(p) for p in order]
    assert names.index("irqbypass") < names.index("kvm") < names.index("kvm_amd")
    assert "virtio_mmio" in names
