"""Fetch the default kernel: Debian sid's current cloud kernel (it has sched_ext).

``suite="trixie"`` fetches Debian 13's cloud kernel the same way (6.12: no sched_ext), the
kernel the "no sched_ext" tests boot; it is cached beside the default one, never preferred
over it (``meta.json`` ``source`` is ``debian-<suite>``).

Chain, resolved each time (sid moves): ``linux-image-cloud-amd64`` (meta) depends on
``linux-image-<release>``, which depends on ``linux-base-<release>`` (config),
``linux-binary-<release>`` (vmlinuz) and ``linux-modules-<release>``. The result goes to ``kernels_dir()/<release>/``:
``vmlinuz``, ``vmlinux`` (decompressed ELF), ``config``, ``modules/`` (the
``lib/modules/<release>`` tree, ``.ko.xz`` kept, plus a generated ``modules.dep``) and
``meta.json``. The folder is built under a temporary name in ``kernels_dir()`` and renamed
at the end, under a lock file, so concurrent fetches and interrupted ones are harmless.

>>> k = fetch_default()                  # no network once a default kernel is cached
>>> k = fetch_default(refresh=True)      # re-read sid; downloads only if sid moved
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from orchestrator.kernel.artifacts import (
    KernelArtifacts,
    KernelError,
    list_cached,
    load_cached,
    parse_config,
)
from orchestrator.kernel.image import ImageError, extract_vmlinux
from orchestrator.kernel.modules import ModuleError, write_modules_dep
from orchestrator.private_apt import AptError, PrivateApt
from schedlab_shared.cache import kernels_dir

__all__ = (
    "DEFAULT_META_PACKAGE",
    "DEFAULT_SUITE",
    "META_FLAGS",
    "SUITES",
    "Progress",
    "fetch_default",
    "resolve_default_release",
    "source_of",
)

DEFAULT_SUITE = "sid"
#: Suites a kernel may be fetched from (``experimental``'s rc kernels are not mixed in).
SUITES = ("sid", "trixie")
DEFAULT_META_PACKAGE = "linux-image-cloud-amd64"
#: Config options recorded in meta.json (absent options are recorded as "n").
META_FLAGS = (
    "SCHED_CLASS_EXT",
    "EXT_GROUP_SCHED",
    "DEBUG_INFO_BTF",
    "HZ",
    "VIRTIO_MMIO",
    "VIRTIO_PCI",
    "VIRTIO_CONSOLE",
    "VIRTIO_BLK",
    "SERIAL_8250",
    "KVM_AMD",
    "RANDOMIZE_BASE",
    "PVH",
    "NET_9P",
    "BPF_SYSCALL",
    "PREEMPT_DYNAMIC",
    "NR_CPUS",
)


def source_of(suite: str) -> str:
    """``meta.json``'s ``source`` of a kernel fetched from ``suite``."""
    return f"debian-{suite}"


#: ``progress(stage, detail)``: called at each step (``resolve``, ``download``, ...).
Progress = Callable[[str, str], None]


def _noop(stage: str, detail: str) -> None:
    pass


def resolve_default_release(apt: PrivateApt) -> tuple[str, str]:
    """Find the current default kernel release from the meta package.

    :return: ``(release, image_package)``, e.g. ``("7.2.13+deb14-cloud-amd64",
        "linux-image-7.2.13+deb14-cloud-amd64")``.
    """
    for dep in apt.resolve_depends(DEFAULT_META_PACKAGE):
        m = re.fullmatch(r"linux-image-(\d[\w.+~-]*)", dep)
        if m:
            return m.group(1), dep
    raise KernelError(
        f"{DEFAULT_META_PACKAGE} in {apt.suite} names no linux-image-<version> "
        f"package; Debian's packaging changed: pass --kernel PATH instead"
    )


@contextlib.contextmanager
def _fetch_lock() -> Iterator[None]:
    root = kernels_dir()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".fetch.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _packages_for(apt: PrivateApt, release: str, image_pkg: str) -> list[str]:
    # 7.x splits the image into linux-base (config), linux-binary (vmlinuz) and
    # linux-modules; older layouts ship everything in the linux-image package itself.
    parts = [
        d
        for d in apt.resolve_depends(image_pkg)
        if d.startswith("linux-") and d.endswith(f"-{release}")
    ]
    return parts or [image_pkg]


def _download_and_extract(
    apt: PrivateApt, pkgs: list[str], work: Path, progress: Progress
) -> dict[str, str]:
    versions: dict[str, str] = {}
    tree = work / "x"
    for pkg in pkgs:
        progress("download", pkg)
        deb = apt.download(pkg, work / "debs")
        versions[pkg] = deb.name.split("_")[1] if deb.name.count("_") >= 2 else "?"
        progress("extract", deb.name)
        res = subprocess.run(
            ["dpkg-deb", "-x", str(deb), str(tree)], capture_output=True, text=True, check=False
        )
        if res.returncode != 0:
            raise KernelError(f"dpkg-deb -x {deb.name} failed: {res.stderr.strip()}")
    return versions


def _locate(tree: Path, release: str) -> tuple[Path, Path, Path]:
    """(modules tree, vmlinuz, config) inside an extracted package tree."""
    for mods in (tree / "usr/lib/modules" / release, tree / "lib/modules" / release):
        if mods.is_dir():
            break
    else:
        raise KernelError(f"packages for {release} hold no lib/modules/{release}")
    vmlinuz = next(
        (p for p in (mods / "vmlinuz", tree / "boot" / f"vmlinuz-{release}") if p.is_file()), None
    )
    config = next(
        (p for p in (mods / "config", tree / "boot" / f"config-{release}") if p.is_file()), None
    )
    if vmlinuz is None or config is None:
        raise KernelError(f"packages for {release} hold no vmlinuz or config")
    return mods, vmlinuz, config


def _assemble(
    tree: Path, out: Path, release: str, versions: dict[str, str], progress: Progress, source: str
) -> None:
    mods, vmlinuz, config = _locate(tree, release)
    out.mkdir()
    shutil.move(vmlinuz, out / "vmlinuz")
    shutil.move(config, out / "config")
    sysmap = mods / "System.map"
    if sysmap.is_file():
        shutil.move(sysmap, out / "System.map")
    shutil.move(mods, out / "modules")
    progress("vmlinux", "decompressing the kernel payload")
    data = (out / "vmlinuz").read_bytes()
    try:
        (out / "vmlinux").write_bytes(extract_vmlinux(data))
    except ImageError as exc:
        raise KernelError(f"{release}: cannot extract vmlinux: {exc}") from exc
    progress("modules", "indexing module dependencies")
    try:
        write_modules_dep(out / "modules")
    except ModuleError as exc:
        raise KernelError(f"{release}: bad module tree: {exc}") from exc
    cfg = parse_config((out / "config").read_text(errors="replace"))
    meta = {
        "version": release,
        "source": source,
        "packages": versions,
        "config_flags": {f: cfg.get(f"CONFIG_{f}", "n") for f in META_FLAGS},
        "vmlinuz_sha256": hashlib.sha256(data).hexdigest(),
        "vmlinuz_size": len(data),
        "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def _fetch_release(
    apt: PrivateApt, release: str, image_pkg: str, progress: Progress, source: str
) -> KernelArtifacts:
    final = kernels_dir() / release
    with _fetch_lock():
        if (final / "meta.json").is_file():
            return load_cached(final)
        work = Path(tempfile.mkdtemp(prefix=f".tmp-{release}-", dir=kernels_dir()))
        try:
            pkgs = _packages_for(apt, release, image_pkg)
            versions = _download_and_extract(apt, pkgs, work, progress)
            _assemble(work / "x", work / "out", release, versions, progress, source)
            if final.exists():  # a leftover without meta.json: incomplete, replace it
                shutil.rmtree(final)
            os.rename(work / "out", final)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    progress("done", str(final))
    return load_cached(final)


def fetch_default(
    progress: Progress | None = None,
    *,
    refresh: bool = False,
    apt: PrivateApt | None = None,
    suite: str = DEFAULT_SUITE,
) -> KernelArtifacts:
    """Make sure the default kernel (or ``suite``'s cloud kernel) is cached and return it.

    :param progress: ``progress(stage, detail)`` callback for the CLI.
    :param refresh: re-download sid's package lists and fetch a newer kernel if sid moved;
        without it, an already cached default kernel is returned with no network access.
    :param apt: the apt state to use (tests pass a private one).
    :param suite: one of :data:`SUITES`.
    :return: the cached kernel's artifacts; raises :class:`KernelError` on failure.
    """
    report = progress or _noop
    if suite not in SUITES:
        raise KernelError(f"suite {suite!r}: pick one of {', '.join(SUITES)}")
    source = source_of(suite)
    if not refresh:
        cached = [k for k in list_cached() if k.meta.get("source") == source]
        if cached:
            report("cached", str(cached[-1].root))
            return cached[-1]
    apt = apt or PrivateApt(suite)
    try:
        report("update", f"package lists of {apt.suite} from {apt.mirror}")
        apt.update(force=refresh)
        release, image_pkg = resolve_default_release(apt)
        report("resolve", release)
        return _fetch_release(apt, release, image_pkg, report, source)
    except AptError as exc:
        raise KernelError(f"kernel download failed: {exc}") from exc
