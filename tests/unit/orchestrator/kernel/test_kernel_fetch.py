"""fetch_default against a fake apt that serves locally built .debs (no network)."""

import gzip
import json
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
from test_kernel_image import FAKE_ELF, make_bzimage

from orchestrator.kernel.artifacts import KernelError
from orchestrator.kernel.fetch import fetch_default
from orchestrator.kernel.resolve import resolve_kernel
from tests.framework.prereq import missing

REL = "7.9.1+deb14-cloud-amd64"


def _deb(tmp_path, name, files):
    root = tmp_path / "src" / name
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN/control").write_text(
        f"Package: {name}\nVersion: 7.9.1-1\nArchitecture: amd64\nMaintainer: t <t@t>\n"
        "Description: test\n"
    )
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    out = tmp_path / "pool" / f"{name}_7.9.1-1_amd64.deb"
    out.parent.mkdir(exist_ok=True)
    subprocess.run(
        ["dpkg-deb", "--build", "-Zgzip", str(root), str(out)], check=True, capture_output=True
    )
    return out


class FakeApt:
    suite, mirror = "sid", "file:///fake"

    def __init__(self, tmp_path):
        mods = f"usr/lib/modules/{REL}"
        self.debs = {
            f"linux-base-{REL}": _deb(
                tmp_path,
                f"linux-base-{REL}",
                {
                    f"{mods}/config": b"CONFIG_SCHED_CLASS_EXT=y\nCONFIG_HZ=250\n",
                    f"{mods}/modules.builtin": b"",
                },
            ),
            f"linux-binary-{REL}": _deb(
                tmp_path,
                f"linux-binary-{REL}",
                {f"{mods}/vmlinuz": make_bzimage(gzip.compress(FAKE_ELF, mtime=0))},
            ),
            f"linux-modules-{REL}": _deb(
                tmp_path,
                f"linux-modules-{REL}",
                {f"{mods}/kernel/README": b"no modules in this fake\n"},
            ),
        }
        self.deps = {
            "linux-image-cloud-amd64": [f"linux-image-{REL}", "linux-base-cloud-amd64"],
            f"linux-image-{REL}": ["dracut", *self.debs],
        }
        self.downloads = []
        self.updates = 0

    def update(self, *, force=False):
        self.updates += 1
        return True

    def resolve_depends(self, pkg):
        return self.deps[pkg]

    def download(self, pkg, dest):
        self.downloads.append(pkg)
        dest.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy(self.debs[pkg], dest))


@pytest.fixture()
def env(tmp_path, monkeypatch):
    if shutil.which("dpkg-deb") is None:
        missing("dpkg-deb missing")
    monkeypatch.setenv("SCHEDLAB_CACHE", str(tmp_path / "cache"))
    return tmp_path


def test_fetch_builds_cache_entry(env):
    apt = FakeApt(env)
    stages = []
    k = fetch_default(progress=lambda s, d: stages.append(s), refresh=True, apt=apt)
    root = env / "cache/kernels" / REL
    assert k.root == root and k.version == REL and k.has_sched_ext and k.hz == 250
    assert sorted(apt.downloads) == sorted(apt.debs)
    assert (root / "vmlinux").read_bytes() == FAKE_ELF
    assert (root / "modules/modules.dep").read_text() == "\n"
    meta = json.loads((root / "meta.json").read_text())
    assert meta["config_flags"]["SCHED_CLASS_EXT"] == "y"
    assert meta["config_flags"]["VIRTIO_MMIO"] == "n"
    assert meta["packages"][f"linux-binary-{REL}"] == "7.9.1-1"
    assert stages[0] == "update" and stages[-1] == "done"
    assert [p.name for p in (env / "cache/kernels").iterdir() if p.name.startswith(".tmp")] == []
    assert resolve_kernel(None, fetch_if_missing=False).root == root


def test_second_fetch_costs_no_network(env):
    fetch_default(refresh=True, apt=FakeApt(env))
    again = FakeApt(env / "again")
    k = fetch_default(apt=again)
    assert k.version == REL and again.updates == 0 and again.downloads == []
    # refresh re-reads the lists but downloads nothing when sid did not move
    fetch_default(refresh=True, apt=again)
    assert again.updates == 1 and again.downloads == []


def test_concurrent_fetches_download_once(env):
    apt = FakeApt(env)
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(fetch_default(refresh=True, apt=apt).root))
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 3 and len(set(results)) == 1
    assert len(apt.downloads) == 3  # three packages, fetched by one thread only


def test_broken_package_leaves_nothing(env):
    apt = FakeApt(env)
    apt.debs[f"linux-binary-{REL}"] = _deb(env / "b", f"linux-binary-{REL}", {"usr/x": b""})
    with pytest.raises(KernelError, match="no vmlinuz or config"):
        fetch_default(refresh=True, apt=apt)
    left = [p.name for p in (env / "cache/kernels").iterdir() if p.name != ".fetch.lock"]
    assert left == []


def test_another_suite_is_cached_beside_the_default_and_never_preferred(env, monkeypatch):
    sid = fetch_default(apt=FakeApt(env), refresh=True)
    monkeypatch.setitem(globals(), "REL", "6.12.57+deb13-cloud-amd64")
    (env / "trixie").mkdir()
    trixie_apt = FakeApt(env / "trixie")
    trixie_apt.suite = "trixie"
    # A cached sid kernel is not trixie's: the suite's own lists are read.
    k = fetch_default(apt=trixie_apt, suite="trixie")
    assert trixie_apt.updates == 1 and k.meta["source"] == "debian-trixie"
    assert k.version == "6.12.57+deb13-cloud-amd64"
    assert fetch_default(apt=FakeApt(env), suite="trixie").meta["source"] == "debian-trixie"
    assert resolve_kernel(None).meta["source"] == sid.meta["source"] == "debian-sid"
    with pytest.raises(KernelError, match="pick one of sid, trixie"):
        fetch_default(apt=trixie_apt, suite="experimental")
