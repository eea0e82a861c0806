"""CpioArchive: checked against the system's GNU cpio as a second source of truth."""

import os
import shutil
import subprocess

import pytest

from orchestrator.initramfs.cpio import FIXED_MTIME, CpioArchive, CpioError
from tests.framework.prereq import missing


def _need_cpio():
    if shutil.which("cpio") is None:
        missing("cpio binary missing (apt-get install cpio)")


def _sample():
    a = CpioArchive()
    a.add_dir("etc")
    a.add_file("etc/hello", b"hello world\n")
    a.add_file("etc/empty", b"")
    a.add_dirs("usr/bin")
    a.add_file("/usr/bin/tool", b"\x7fELF" + bytes(range(256)) * 3, mode=0o755)
    a.add_symlink("bin", "usr/bin")
    return a


def test_listing_matches_gnu_cpio(tmp_path):
    _need_cpio()
    data = _sample().to_bytes()
    out = subprocess.run(["cpio", "-t", "--quiet"], input=data, capture_output=True, check=True)
    assert out.stdout.decode().split() == [
        "etc",
        "etc/hello",
        "etc/empty",
        "usr",
        "usr/bin",
        "usr/bin/tool",
        "bin",
    ]


def test_extract_round_trip(tmp_path):
    _need_cpio()
    data = _sample().to_bytes()
    subprocess.run(
        ["cpio", "-i", "-d", "--quiet", "--no-absolute-filenames"],
        input=data,
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    assert (tmp_path / "etc/hello").read_bytes() == b"hello world\n"
    assert (tmp_path / "etc/empty").read_bytes() == b""
    tool = tmp_path / "usr/bin/tool"
    assert tool.read_bytes() == b"\x7fELF" + bytes(range(256)) * 3
    assert tool.stat().st_mode & 0o777 == 0o755
    assert os.readlink(tmp_path / "bin") == "usr/bin"


def test_deterministic_and_aligned():
    a, b = _sample().to_bytes(), _sample().to_bytes()
    assert a == b
    assert len(a) % 4 == 0
    assert a.startswith(b"070701")
    assert b"TRAILER!!!\0" in a[-130:]
    assert (b"%08X" % FIXED_MTIME) in a[:110]


def test_char_device_header():
    a = CpioArchive()
    a.add_char_device("dev/console", 5, 1)
    hdr = a.to_bytes()[:110]
    fields = [int(hdr[6 + 8 * i : 14 + 8 * i], 16) for i in range(13)]
    assert fields[1] == 0o20600  # S_IFCHR | 0600
    assert (fields[9], fields[10]) == (5, 1)


@pytest.mark.parametrize("bad", ["", "/", "a/../b", "a//b", "./x"])
def test_rejects_bad_paths(bad):
    with pytest.raises(CpioError):
        CpioArchive().add_file(bad, b"")


def test_rejects_duplicates():
    a = CpioArchive()
    a.add_dir("x")
    with pytest.raises(CpioError, match="duplicate"):
        a.add_file("/x", b"")
    assert "x" in a and len(a) == 1
