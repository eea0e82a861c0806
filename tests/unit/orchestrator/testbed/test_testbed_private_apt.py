"""private_apt: mirror discovery from the system's apt sources, Debian version ordering."""

import shutil

import pytest

from orchestrator.testbed.private_apt import AptError, PrivateApt, compare_versions, debian_mirror

_DEB822 = """Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian/
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://security.example/debian-security
Suites: bookworm-security
Components: main
"""


def test_deb822_mirror(tmp_path):
    (tmp_path / "debian.sources").write_text(_DEB822)
    assert debian_mirror(tmp_path, tmp_path / "none.list") == "http://mirror.example/debian"


def test_security_only_is_not_a_mirror(tmp_path):
    (tmp_path / "sec.sources").write_text(_DEB822.split("\n\n")[1])
    with pytest.raises(AptError):
        debian_mirror(tmp_path, tmp_path / "none.list")


def test_one_line_sources_list(tmp_path):
    lst = tmp_path / "sources.list"
    lst.write_text(
        "# comment\ndeb http://sec.example/x bookworm-security main\n"
        "deb [arch=amd64 signed-by=/k.gpg] https://one.example/debian bookworm main\n"
    )
    empty = tmp_path / "d"
    empty.mkdir()
    assert debian_mirror(empty, lst) == "https://one.example/debian"


def test_private_state_options_never_name_system_paths(tmp_path):
    opts = PrivateApt(tmp_path, "deb http://m/debian bookworm-backports main")._options()
    values = [o for o in opts if o != "-o"]
    for key in ("Dir::Etc::sourcelist", "Dir::State::Lists", "Dir::Cache"):
        (value,) = [v.split("=", 1)[1] for v in values if v.startswith(key + "=")]
        assert value.startswith(str(tmp_path))
    assert "Dir::Etc::sourceparts=-" in values


def test_compare_versions_follows_dpkg():
    if shutil.which("dpkg") is None:
        pytest.skip("dpkg not installed (not a Debian system)")
    assert compare_versions("6.12.95-1~bpo12+1", "6.12.9-1~bpo12+1") == 1
    assert compare_versions("6.12.90-1~bpo12+1", "6.12.90-1") == -1
    assert compare_versions("1.0", "1.0") == 0
