"""PrivateApt: mirror discovery, control-field parsing, version ordering, private options."""

import re
import shutil

import pytest

from orchestrator.private_apt import (
    AptError,
    PrivateApt,
    _depends_names,
    _parse_fields,
    compare_versions,
    system_mirror,
)
from tests.framework.prereq import require

_DEB822 = """Types: deb
URIs: http://security.example/debian-security
Suites: bookworm-security
Components: main

Types: deb deb-src
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian/
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""


def test_mirror_from_deb822(tmp_path):
    (tmp_path / "debian.sources").write_text(_DEB822)
    assert system_mirror(tmp_path, tmp_path / "none.list") == "http://mirror.example/debian"


def test_mirror_from_one_line(tmp_path):
    lst = tmp_path / "sources.list"
    lst.write_text(
        "# x\ndeb http://sec.example/ bookworm-security main\n"
        "deb [arch=amd64 signed-by=/k.gpg] https://m.example/debian bookworm main # tail\n"
    )
    empty = tmp_path / "d"
    empty.mkdir()
    assert system_mirror(empty, lst) == "https://m.example/debian"


def test_security_only_or_nothing_falls_back_to_the_public_mirror(tmp_path):
    (tmp_path / "sec.sources").write_text(_DEB822.split("\n\n")[0])
    assert system_mirror(tmp_path, tmp_path / "none.list") == "http://deb.debian.org/debian"
    assert system_mirror(tmp_path / "a", tmp_path / "b") == "http://deb.debian.org/debian"


def test_depends_parsing():
    field = (
        "dracut | initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool, "
        "linux-base-7.2.13+deb14-cloud-amd64 (= 7.2.13-1), python3:any,kmod"
    )
    assert _depends_names(field) == [
        "dracut",
        "linux-base-7.2.13+deb14-cloud-amd64",
        "python3",
        "kmod",
    ]
    assert _depends_names("") == []


def test_control_fields_with_continuation():
    fields = _parse_fields("Package: a\nVersion: 1.0-1\nDescription: short\n long line\n")
    assert fields["Version"] == "1.0-1"
    assert fields["Description"] == "short\nlong line"


def test_options_are_private(tmp_path):
    apt = PrivateApt("bookworm-backports", tmp_path / "st", mirror="http://m.example/debian")
    apt._prepare()
    opts = apt._options()
    joined = " ".join(opts)
    assert (tmp_path / "st/lists/partial").is_dir()
    assert (tmp_path / "st/etc/sources.list").read_text() == (
        "deb http://m.example/debian bookworm-backports main\n"
    )
    for key in ("Dir::Etc::sourcelist", "Dir::State::Lists", "Dir::State::status", "Dir::Cache"):
        value = next(o for o in opts if o.startswith(key + "="))
        assert value.split("=", 1)[1].startswith(str(tmp_path / "st")), value
    assert "Dir::Etc::sourceparts=-" in joined and "Debug::NoLocking=1" in joined
    assert not apt.has_lists() and apt.lists_age() is None


def test_update_skips_when_lists_present(tmp_path, monkeypatch):
    apt = PrivateApt("sid", tmp_path)
    apt._prepare()
    (tmp_path / "lists/x_dists_sid_main_binary-amd64_Packages.lz4").write_bytes(b"x")
    monkeypatch.setattr(apt, "_run", lambda *a, **k: pytest.fail("network used"))
    assert apt.update() is False


def test_newest_picks_the_highest_debian_version_of_real_packages(tmp_path, monkeypatch):
    require(shutil.which("dpkg") is not None, "dpkg not installed (not a Debian system)")
    apt = PrivateApt("bookworm-backports", tmp_path, mirror="http://m.example/debian")
    names = ["linux-image-6.12.9-amd64", "linux-image-6.12.95-amd64", "linux-image-6.12-virtual"]
    versions = {names[0]: "6.12.9-1~bpo12+1", names[1]: "6.12.95-1~bpo12+1"}
    monkeypatch.setattr(apt, "package_names", lambda prefix: names)
    monkeypatch.setattr(apt, "candidate_version", versions.get)
    pattern = re.compile(r"linux-image-6\.12(\.\d+)?-\w+")
    assert apt.newest(pattern, "linux-image-6.12.") == (names[1], versions[names[1]])
    with pytest.raises(AptError, match="no package matching"):
        apt.newest(re.compile("nothing"), "x")


def test_compare_versions_follows_dpkg():
    require(shutil.which("dpkg") is not None, "dpkg not installed (not a Debian system)")
    assert compare_versions("6.12.95-1~bpo12+1", "6.12.9-1~bpo12+1") == 1
    assert compare_versions("6.12.90-1~bpo12+1", "6.12.90-1") == -1
    assert compare_versions("1.0", "1.0") == 0
