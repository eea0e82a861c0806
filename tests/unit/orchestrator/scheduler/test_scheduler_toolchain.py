"""The build toolchain check: install as root, else the exact apt-get line."""

import pytest

from orchestrator.scheduler.errors import ToolchainError
from orchestrator.scheduler.toolchain import PACKAGES, apt_line, ensure_toolchain, missing_packages


def test_missing_packages_in_table_order():
    absent = {"clang-19", "/usr/include/libelf.h"}
    assert missing_packages(lambda probe: probe not in absent) == ["clang-19", "libelf-dev"]
    assert missing_packages(lambda probe: True) == []
    assert set(PACKAGES) >= {"clang-19", "llvm-19", "libelf-dev", "zlib1g-dev", "pkg-config"}


def test_not_root_gets_the_apt_line():
    installs = []
    with pytest.raises(ToolchainError) as err:
        ensure_toolchain(
            present=lambda p: p != "llvm-strip-19",
            is_root=False,
            install=lambda pkgs, progress: installs.append(pkgs),
        )
    assert installs == []
    assert str(err.value).endswith("run: sudo apt-get install -y --no-install-recommends llvm-19")
    assert apt_line(["a", "b"]) == "sudo apt-get install -y --no-install-recommends a b"


def test_root_installs_what_ismissing(monkeypatch):
    have = {p for p in PACKAGES.values()} - {"clang-19"}
    installs = []

    def install(pkgs, progress):
        progress("installing")
        installs.append(pkgs)
        have.add("clang-19")

    monkeypatch.setattr("shutil.which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr("orchestrator.scheduler.toolchain.bpf_clang", lambda clang: None)
    said = []
    tc = ensure_toolchain(
        present=lambda p: p in have, is_root=True, install=install, progress=said.append
    )
    assert installs == [["clang-19"]] and said == ["installing"]
    assert (tc.clang, tc.llvm_strip, tc.make) == (
        "/usr/bin/clang-19",
        "/usr/bin/llvm-strip-19",
        "/usr/bin/make",
    )


def test_install_that_changes_nothing_fails():
    with pytest.raises(ToolchainError, match="apt-get installed nothing for zlib1g-dev"):
        ensure_toolchain(
            present=lambda p: p != "/usr/include/zlib.h",
            is_root=True,
            install=lambda pkgs, progress: None,
        )


def test_bpf_compiles_go_to_the_wheels_clang_the_rest_to_clang_19(tmp_path, monkeypatch):
    import subprocess

    from orchestrator.scheduler.toolchain import bpf_clang

    monkeypatch.setenv("SCHEDLAB_CACHE", str(tmp_path / "cache"))
    echo = tmp_path / "echo-args"
    echo.write_text('#!/bin/sh\necho "$0 $*"\n')
    echo.chmod(0o755)
    wrapper = bpf_clang(str(echo) + " fallback", python=str(echo))
    assert wrapper is not None and wrapper.startswith(str(tmp_path / "cache"))

    def run(*args):
        return subprocess.run([wrapper, *args], capture_output=True, text=True).stdout.strip()

    assert run("-g", "-target", "bpf", "-c", "a b.c") == (
        f"{echo} -m ziglang cc -fno-unwind-tables -fno-asynchronous-unwind-tables -fno-addrsig"
        " -g -target bpfel-freestanding-none -c a b.c"
    )
    assert run("-v", "-E", "-") == f"{echo} fallback -v -E -"
    assert bpf_clang(str(echo) + " fallback", python=str(echo)) == wrapper  # idempotent
