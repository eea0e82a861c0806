"""PrivateApt: mirror discovery, control-field parsing, and the private apt options."""

import pytest

from orchestrator.kernel import apt as apt_mod
from orchestrator.kernel.apt import PrivateApt, _depends_names, _parse_fields


def test_mirror_from_deb822(tmp_path, monkeypatch):
    src = tmp_path / "debian.sources"
    src.write_text(
        "Types: deb\nURIs: http://security.example/debian-security\nSuites: bookworm-security\n"
        "Components: main\n\n"
        "Types: deb deb-src\n# comment\nURIs: http://mirror.example/debian/\n"
        "Suites: bookworm bookworm-updates\nComponents: main\n")
    monkeypatch.setattr(apt_mod, "_DEB822", src)
    monkeypatch.setattr(apt_mod, "_ONE_LINE", tmp_path / "missing")
    assert apt_mod.system_mirror() == "http://mirror.example/debian"


def test_mirror_from_one_line(tmp_path, monkeypatch):
    lst = tmp_path / "sources.list"
    lst.write_text("# x\ndeb http://sec.example/ bookworm-security main\n"
                   "deb [arch=amd64 signed-by=/k.gpg] http://m.example/debian bookworm main\n")
    monkeypatch.setattr(apt_mod, "_DEB822", tmp_path / "missing")
    monkeypatch.setattr(apt_mod, "_ONE_LINE", lst)
    assert apt_mod.system_mirror() == "http://m.example/debian"


def test_mirror_fallback(tmp_path, monkeypatch):
    monkeypatch.setattr(apt_mod, "_DEB822", tmp_path / "a")
    monkeypatch.setattr(apt_mod, "_ONE_LINE", tmp_path / "b")
    assert apt_mod.system_mirror() == "http://deb.debian.org/debian"


def test_depends_parsing():
    field = ("dracut | initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool, "
             "linux-base-7.2.13+deb14-cloud-amd64 (= 7.2.13-1), python3:any,kmod")
    assert _depends_names(field) == ["dracut", "linux-base-7.2.13+deb14-cloud-amd64",
                                     "python3", "kmod"]
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
    assert (tmp_path / "st/etc/sources.list").read_text() == \
        "deb http://m.example/debian bookworm-backports main\n"
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
