"""ELF dependency resolution: gcc-built libraries with RUNPATH/$ORIGIN, and the real python."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.initramfs.elfdeps import (
    ElfDepsError,
    elf_deps,
    ld_so_conf_dirs,
    resolve_libraries,
)
from tests.framework.prereq import missing


def _gcc():
    if shutil.which("gcc") is None:
        missing("gcc missing")


def _build(tmp_path):
    """prog -> liba (RUNPATH $ORIGIN/../lib) -> libb (found beside liba through liba's RUNPATH)."""
    lib = tmp_path / "lib"
    lib.mkdir()
    (tmp_path / "b.c").write_text("int b(void){return 2;}\n")
    (tmp_path / "a.c").write_text("int b(void); int a(void){return b()+1;}\n")
    (tmp_path / "p.c").write_text("int a(void); int main(void){return a();}\n")
    cc = ["gcc", "-shared", "-fPIC"]
    subprocess.run(
        [*cc, "-o", str(lib / "libb.so.1"), "-Wl,-soname,libb.so.1", str(tmp_path / "b.c")],
        check=True,
    )
    subprocess.run(
        [
            *cc,
            "-o",
            str(lib / "liba.so.1"),
            "-Wl,-soname,liba.so.1",
            str(tmp_path / "a.c"),
            str(lib / "libb.so.1"),
            "-Wl,--enable-new-dtags,-rpath,$ORIGIN",
        ],
        check=True,
    )
    (tmp_path / "bin").mkdir()
    prog = tmp_path / "bin/prog"
    subprocess.run(
        [
            "gcc",
            "-o",
            str(prog),
            str(tmp_path / "p.c"),
            str(lib / "liba.so.1"),
            "-Wl,--enable-new-dtags,-rpath,$ORIGIN/../lib",
        ],
        check=True,
    )
    return prog, lib


def test_runpath_origin_chain(tmp_path):
    _gcc()
    prog, lib = _build(tmp_path)
    deps = elf_deps(prog)
    assert "liba.so.1" in deps.needed and deps.runpath == (str(tmp_path / "bin/../lib"),)
    assert deps.interp and deps.interp.endswith("ld-linux-x86-64.so.2")
    libs, interp = resolve_libraries([prog])
    assert libs["liba.so.1"].resolve() == lib / "liba.so.1"
    assert libs["libb.so.1"].resolve() == lib / "libb.so.1"
    assert "libc.so.6" in libs and interp == Path(deps.interp)
    # second source of truth: the real loader agrees
    out = subprocess.run(["ldd", str(prog)], capture_output=True, text=True, check=True).stdout
    assert str(lib / "libb.so.1") in out.replace("/bin/../lib", "/lib")


def test_missing_library(tmp_path):
    _gcc()
    prog, lib = _build(tmp_path)
    (lib / "libb.so.1").unlink()
    with pytest.raises(ElfDepsError, match="libb.so.1 not found"):
        resolve_libraries([prog])


def test_not_elf(tmp_path):
    f = tmp_path / "x"
    f.write_text("#!/bin/sh\n")
    with pytest.raises(ElfDepsError, match="not a readable ELF"):
        elf_deps(f)


def test_ld_so_conf_includes(tmp_path):
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d/a.conf").write_text("# c\n/opt/a\n")
    (tmp_path / "conf.d/b.conf").write_text("/opt/b\n")
    conf = tmp_path / "ld.so.conf"
    conf.write_text("include conf.d/*.conf\n/opt/c\n")
    assert ld_so_conf_dirs(conf) == ["/opt/a", "/opt/b", "/opt/c"]


def test_running_python():
    exe = Path(sys.executable).resolve()
    libs, interp = resolve_libraries([exe])
    assert "libc.so.6" in libs and interp is not None and interp.exists()
    out = subprocess.run(["ldd", str(exe)], capture_output=True, text=True, check=True).stdout
    for name in libs:
        assert name in out or name.startswith("ld-linux"), name
