"""The linux-source subset cache against a fake apt serving a tiny linux-source .deb."""

import io
import json
import lzma
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from conftest import make_kernel

from orchestrator.private_apt import AptError
from orchestrator.scheduler.errors import SourceError
from orchestrator.scheduler.source import (
    SOURCE_MEMBERS,
    ensure_source,
    release_of,
    schedulers_dir,
    wanted_version,
)
from tests.framework.prereq import require


def _tar_xz(files: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return lzma.compress(raw.getvalue())


def _source_deb(tmp_path: Path, version: str, members=SOURCE_MEMBERS) -> Path:
    top = "linux-source-7.2"
    files = {
        f"{top}/{m}/x" if "." not in m.rsplit("/", 1)[-1] else f"{top}/{m}": m.encode()
        for m in members
    }
    files[f"{top}/drivers/gpu/huge.c"] = b"not needed by the build\n"
    root = tmp_path / f"deb-{version}"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN/control").write_text(
        f"Package: linux-source-7.2\nVersion: {version}\nArchitecture: all\n"
        "Maintainer: t <t@t>\nDescription: test\n"
    )
    (root / "usr/src").mkdir(parents=True)
    (root / f"usr/src/{top}.tar.xz").write_bytes(_tar_xz(files))
    out = tmp_path / f"linux-source-7.2_{version}_all.deb"
    subprocess.run(
        ["dpkg-deb", "--build", "-Zgzip", str(root), str(out)], check=True, capture_output=True
    )
    return out


class FakeApt:
    suite = "sid"

    def __init__(self, debs: dict[str, Path], offline: bool = False) -> None:
        self.debs = debs
        self.version = max(debs)
        self.offline = offline
        self.downloads: list[str] = []

    def update(self, *, force=False):
        if self.offline:
            raise AptError("apt-get update failed: network unreachable")
        return True

    def show(self, pkg):
        assert pkg == "linux-source-7.2"
        return {"Package": pkg, "Version": self.version}

    def download(self, pkg, dest):
        self.downloads.append(pkg)
        dest.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy(self.debs[self.version], dest))


@pytest.fixture()
def tools():
    for tool in ("dpkg-deb", "tar", "xz"):
        require(shutil.which(tool) is not None, f"{tool} missing")


def test_release_and_wanted_version(tmp_path):
    assert release_of("7.2.13+deb14-cloud-amd64") == "7.2" and release_of("6.12.0") == "6.12"
    with pytest.raises(SourceError, match="no major.minor"):
        release_of("custom")
    assert wanted_version(make_kernel(tmp_path)) == "7.2.13-1"


def test_download_once_extract_only_the_build_subset(cache, tmp_path, tools):
    apt = FakeApt({"7.2.13-1": _source_deb(tmp_path, "7.2.13-1")})
    kernel = make_kernel(tmp_path)
    said = []
    src = ensure_source(kernel, apt=apt, progress=said.append)
    assert (src.package, src.version) == ("linux-source-7.2", "7.2.13-1")
    assert src.root == schedulers_dir() / "source/linux-source-7.2_7.2.13-1"
    assert (src.root / "tools/sched_ext/x").read_bytes() == b"tools/sched_ext"
    assert (src.root / "kernel/bpf/disasm.c").is_file()
    assert not (src.root / "drivers").exists()  # only SOURCE_MEMBERS
    assert json.loads((src.root / ".schedlab-source.json").read_text())["version"] == "7.2.13-1"
    assert said[0] == "downloading linux-source-7.2 7.2.13-1"
    # The .deb and the temporary folder are gone; a second kernel reuses the tree offline.
    assert sorted(p.name for p in (schedulers_dir() / "source").iterdir()) == [
        ".lock",
        src.root.name,
    ]
    offline = FakeApt(apt.debs, offline=True)
    again = ensure_source(make_kernel(tmp_path, version="7.2.13+deb14-amd64"), apt=offline)
    assert again == src and offline.downloads == []


def test_user_kernel_takes_the_cached_tree(cache, tmp_path, tools):
    apt = FakeApt({"7.2.13-1": _source_deb(tmp_path, "7.2.13-1")})
    ensure_source(make_kernel(tmp_path), apt=apt)
    user = make_kernel(tmp_path, version="7.2.0-custom")
    user = type(user)(**{**user.__dict__, "meta": {"source": "user"}})
    assert ensure_source(user, apt=FakeApt(apt.debs, offline=True)).version == "7.2.13-1"


def test_suite_moved_on_uses_its_version(cache, tmp_path, tools):
    apt = FakeApt({"7.2.14-1": _source_deb(tmp_path, "7.2.14-1")})
    assert ensure_source(make_kernel(tmp_path), apt=apt).version == "7.2.14-1"


def test_offline_without_cache_is_one_line(cache, tmp_path):
    with pytest.raises(SourceError) as err:
        ensure_source(make_kernel(tmp_path), apt=FakeApt({"7.2.13-1": tmp_path}, offline=True))
    assert str(err.value) == (
        "cannot download linux-source-7.2: apt-get update failed: network unreachable"
    )


def test_missing_member_fails_and_leaves_nothing(cache, tmp_path, tools):
    deb = _source_deb(tmp_path, "7.2.13-1", members=SOURCE_MEMBERS[:-1])
    with pytest.raises(SourceError) as err:
        ensure_source(make_kernel(tmp_path), apt=FakeApt({"7.2.13-1": deb}))
    assert "scripts/bpf_doc.py" in str(err.value) and "\n" not in str(err.value)
    assert [p.name for p in (schedulers_dir() / "source").iterdir()] == [".lock"]
