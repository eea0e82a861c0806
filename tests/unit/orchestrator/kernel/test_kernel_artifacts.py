"""resolve_kernel / list_cached: paths, versions, defaults and their one-line errors."""

import gzip
import json

import pytest
from test_kernel_image import FAKE_ELF, make_bzimage

from orchestrator.kernel.artifacts import (
    KernelError,
    list_cached,
    parse_config,
)
from orchestrator.kernel.resolve import resolve_kernel


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SCHEDLAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _cached_kernel(cache, version, source="debian-sid", config="CONFIG_SCHED_CLASS_EXT=y\n"):
    root = cache / "kernels" / version
    (root / "modules/kernel").mkdir(parents=True)
    (root / "vmlinuz").write_bytes(make_bzimage(gzip.compress(FAKE_ELF, mtime=0)))
    (root / "vmlinux").write_bytes(FAKE_ELF)
    (root / "config").write_text(config)
    (root / "System.map").write_text("ffffffffffffffff B The real System.map is elsewhere\n")
    (root / "meta.json").write_text(json.dumps({"version": version, "source": source}))
    return root


def test_parse_config():
    cfg = parse_config('CONFIG_HZ=250\n# CONFIG_X is not set\nCONFIG_S="a b"\nCONFIG_Y=y\n')
    assert cfg == {"CONFIG_HZ": "250", "CONFIG_S": "a b", "CONFIG_Y": "y"}


def test_default_is_newest_cached(cache):
    _cached_kernel(cache, "7.2.9+deb14-cloud-amd64")
    _cached_kernel(cache, "7.2.13+deb14-cloud-amd64", config="CONFIG_HZ=1000\n")
    (cache / "kernels/.tmp-partial").mkdir()
    k = resolve_kernel(None, fetch_if_missing=False)
    assert k.version == "7.2.13+deb14-cloud-amd64"
    assert k.hz == 1000 and not k.has_sched_ext
    assert k.system_map is None  # the Debian one-line stub is not a symbol map
    assert [c.version for c in list_cached()] == [
        "7.2.9+deb14-cloud-amd64",
        "7.2.13+deb14-cloud-amd64",
    ]


def test_version_lookup(cache):
    root = _cached_kernel(cache, "7.2.13+deb14-cloud-amd64")
    k = resolve_kernel("7.2.13+deb14-cloud-amd64")
    assert k.root == root and k.has_sched_ext and k.modules_dir == root / "modules"


def test_missing_version_error(cache):
    _cached_kernel(cache, "7.2.13+deb14-cloud-amd64")
    with pytest.raises(KernelError) as err:
        resolve_kernel("9.9.9")
    msg = str(err.value)
    assert "\n" not in msg and "9.9.9" in msg and "7.2.13+deb14-cloud-amd64" in msg


def test_empty_cache_without_fetch(cache):
    with pytest.raises(KernelError, match="schedlab kernel fetch"):
        resolve_kernel(None, fetch_if_missing=False)


def test_not_a_kernel(tmp_path, cache):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\0" * 8192)
    with pytest.raises(KernelError) as err:
        resolve_kernel(str(junk))
    assert str(err.value) == (
        f"--kernel {junk}: not a Linux kernel image (no bzImage header, "
        "not an ELF); pass a vmlinuz/bzImage or run `schedlab kernel fetch`"
    )


def test_missing_path(tmp_path, cache):
    with pytest.raises(KernelError, match="no such file"):
        resolve_kernel(str(tmp_path / "nope"))


def test_user_bzimage_extracts_vmlinux_once(tmp_path, cache):
    img = tmp_path / "boot/vmlinuz-6.99.0-test"
    img.parent.mkdir()
    img.write_bytes(make_bzimage(gzip.compress(FAKE_ELF, mtime=0)))
    (img.parent / "config-6.99.0-test").write_text("CONFIG_DEBUG_INFO_BTF=y\n")
    k = resolve_kernel(str(img))
    assert k.version == "6.99.0-test" and k.vmlinuz == img and k.has_btf
    assert k.vmlinux.read_bytes() == FAKE_ELF and k.vmlinux.is_relative_to(cache)
    mtime = k.vmlinux.stat().st_mtime_ns
    assert resolve_kernel(str(img)).vmlinux.stat().st_mtime_ns == mtime


def test_user_elf_vmlinux(tmp_path, cache):
    elf = tmp_path / "vmlinux"
    elf.write_bytes(FAKE_ELF)
    k = resolve_kernel(str(elf))
    assert k.vmlinuz == elf and k.vmlinux == elf and not k.config_known


def test_user_bzimage_that_does_not_decompress(tmp_path, cache):
    img = tmp_path / "bzImage"
    img.write_bytes(make_bzimage(gzip.compress(b"not an elf", mtime=0)))
    with pytest.raises(KernelError, match="cannot decompress its vmlinux"):
        resolve_kernel(str(img))
