"""build_initramfs: contents, order contract, caching, modules; the runtime runs in a chroot."""

import json
import lzma
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from orchestrator.initramfs.builder import INIT_STUB, build_initramfs
from orchestrator.initramfs.pyruntime import compile_pyc, find_modules
from orchestrator.kernel.artifacts import KernelArtifacts, KernelError
from tests.framework.prereq import missing

GUEST_INIT = 'import sys\n\ndef main():\n    print("guest main", sys.version_info[:2])\n'


def _need(tool):
    if shutil.which(tool) is None:
        missing(f"{tool} missing")


def _guest(root: Path, body=GUEST_INIT) -> Path:
    pkg = root / "guest"
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "init.py").write_text(body)
    (pkg / "helper.py").write_text("import json\nimport msgpack\n")
    return pkg


def _list(image: Path) -> list[str]:
    out = subprocess.run(
        ["cpio", "-t", "--quiet"], stdin=image.open("rb"), capture_output=True, check=True
    )
    return out.stdout.decode().split()


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    old = os.environ.get("SCHEDLAB_CACHE")
    os.environ["SCHEDLAB_CACHE"] = str(root)
    yield root
    if old is None:
        del os.environ["SCHEDLAB_CACHE"]
    else:
        os.environ["SCHEDLAB_CACHE"] = old


@pytest.fixture(scope="module")
def image(cache, tmp_path_factory):
    _need("cpio")
    src = _guest(tmp_path_factory.mktemp("g"))
    return src, build_initramfs(
        None, guest_src=src, extra_files={"etc/motd": b"hi\n", "usr/bin/tool": b"#!/bin/x\n"}
    )


def test_compile_pyc_imports(tmp_path):
    import importlib.machinery
    import importlib.util

    pyc = tmp_path / "m.pyc"
    pyc.write_bytes(compile_pyc(b"X = 6 * 7\n", "/usr/lib/m.py"))
    loader = importlib.machinery.SourcelessFileLoader("m", str(pyc))
    mod = importlib.util.module_from_spec(importlib.util.spec_from_loader("m", loader))
    loader.exec_module(mod)
    assert mod.X == 42
    assert compile_pyc(b"X = 1\n", "f") == compile_pyc(b"X = 1\n", "f")


def test_find_modules_follows_guest_imports(tmp_path):
    mods = find_modules(_guest(tmp_path, "import xml.dom.minidom\ndef main(): pass\n"))
    for name in ("msgpack", "json", "encodings.utf_8", "ctypes", "xml.dom.minidom"):
        assert name in mods, name
    assert not any(n.split(".")[0] in ("guest", "unittest", "tkinter") for n in mods)


def test_layout_and_order(image):
    src, path = image
    names = _list(path)
    files = [n for n in names if "." in n.rsplit("/", 1)[-1] or n in ("init",)]
    image_id = path.stem
    assert len(image_id) == 64
    assert names[-1] == "schedlab.sentinel"
    first_file = next(
        n
        for n in names
        if n
        not in (
            "dev",
            "proc",
            "sys",
            "tmp",
            "run",
            "root",
            "etc",
            "usr",
            "usr/bin",
            "dev/console",
            "dev/null",
            "dev/random",
            "dev/urandom",
        )
    )
    assert first_file == "etc/schedlab-image-id"
    for need in (
        "init",
        "usr/bin/python3",
        "lib64/ld-linux-x86-64.so.2",
        "usr/lib/python3.11/os.pyc",
        "usr/lib/python3.11/msgpack/__init__.pyc",
        "usr/lib/schedlab/guest/init.py",
        "usr/lib/schedlab/guest/__pycache__/init.cpython-311.pyc",
        "etc/motd",
        "usr/bin/tool",
    ):
        assert need in names, need
    assert any(n.startswith("lib/x86_64-linux-gnu/libpython3") for n in names)
    assert files
    manifest = json.loads(path.with_suffix(".json").read_text())
    assert manifest["id"] == image_id and manifest["size"] == path.stat().st_size


def test_extracted_runtime_runs(image, tmp_path):
    src, path = image
    subprocess.run(
        ["cpio", "-i", "-d", "--quiet", "--no-absolute-filenames"],
        stdin=path.open("rb"),
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    assert (tmp_path / "init").read_bytes() == INIT_STUB
    assert os.access(tmp_path / "init", os.X_OK) and os.access(tmp_path / "usr/bin/tool", os.X_OK)
    assert not os.access(tmp_path / "etc/motd", os.X_OK)
    ident = (tmp_path / "etc/schedlab-image-id").read_bytes()
    assert ident == (tmp_path / "schedlab.sentinel").read_bytes() == path.stem.encode()
    if os.geteuid() != 0:
        missing("chroot needs root")
    before = sorted(p for p in tmp_path.rglob("*"))
    out = subprocess.run(
        ["chroot", str(tmp_path), "/init"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "guest main (3, 11)"
    out = subprocess.run(
        [
            "chroot",
            str(tmp_path),
            "/usr/bin/python3",
            "-S",
            "-c",
            "import sys; sys.path.insert(0, '/usr/lib/schedlab'); import guest.helper,"
            " ctypes, msgpack, threading, subprocess; print(sys.prefix)",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.stdout.strip() == "/usr", out.stderr
    assert sorted(p for p in tmp_path.rglob("*")) == before  # shipped pycs were valid: none written


def test_cache_hit_is_fast_and_inputs_matter(image, tmp_path):
    src, path = image
    extra = {"etc/motd": b"hi\n", "usr/bin/tool": b"#!/bin/x\n"}
    t = time.perf_counter()
    again = build_initramfs(None, guest_src=src, extra_files=extra)
    elapsed = time.perf_counter() - t
    assert again == path
    assert elapsed < 0.3, f"cache hit took {elapsed:.3f} s"
    other = build_initramfs(None, guest_src=src, extra_files={"etc/motd": b"bye\n"})
    assert other != path and other.is_file()


def test_modules_need_a_kernel(cache, tmp_path):
    with pytest.raises(KernelError, match="no module tree"):
        build_initramfs(None, modules=["kvm"], guest_src=_guest(tmp_path))


def _fake_kernel(tmp_path) -> KernelArtifacts:
    _need("gcc")
    mods = tmp_path / "mods"
    (mods / "kernel").mkdir(parents=True)
    for name, deps in (("base", ""), ("top", "base")):
        c = tmp_path / f"{name}.c"
        c.write_text(
            f'__attribute__((section(".modinfo"), used)) static const char d[] = '
            f'"depends={deps}";\n'
        )
        subprocess.run(["gcc", "-c", "-o", str(tmp_path / f"{name}.o"), str(c)], check=True)
        (mods / f"kernel/{name}.ko.xz").write_bytes(
            lzma.compress((tmp_path / f"{name}.o").read_bytes())
        )
    return KernelArtifacts("6.99.0-t", tmp_path, tmp_path / "vmlinuz", None, {}, mods, None, {})


def test_modules_in_load_order(image, tmp_path):
    src, _ = image
    kernel = _fake_kernel(tmp_path)
    path = build_initramfs(kernel, modules=["top"], guest_src=src)
    work = tmp_path / "x"
    work.mkdir()
    subprocess.run(
        ["cpio", "-i", "-d", "--quiet", "--no-absolute-filenames", "lib/modules/*"],
        stdin=path.open("rb"),
        cwd=work,
        check=True,
    )
    order = (work / "lib/modules/6.99.0-t/schedlab-load-order").read_text().split()
    assert order == ["/lib/modules/6.99.0-t/kernel/base.ko", "/lib/modules/6.99.0-t/kernel/top.ko"]
    assert (work / "lib/modules/6.99.0-t/kernel/top.ko").read_bytes()[:4] == b"\x7fELF"
    with pytest.raises(KernelError, match="not found"):
        build_initramfs(kernel, modules=["nope"], guest_src=src)
