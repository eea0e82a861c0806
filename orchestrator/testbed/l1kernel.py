"""The testbed's L1 kernel: Debian bookworm-backports 6.12 (non-cloud flavour, it has 9p).

Fetched once into ``tools_dir()/testbed`` through a private apt state, then kept as
``l1-<release>-<module set hash>/vmlinuz`` plus the decompressed modules that give L1 a ``/dev/kvm`` (kvm-amd
on TCG's emulated SVM) and 9p over virtio, listed in ``l1kernel.json`` in load order.

>>> k = ensure_l1_kernel()
>>> k.release, [m.name for m in k.modules][:2]
('6.12.95+deb12-amd64', ['irqbypass.ko', 'kvm.ko'])
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import lzma
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from elftools.elf.elffile import ELFFile

from orchestrator.private_apt import AptError, PrivateApt
from schedlab_shared.cache import tools_dir

__all__ = (
    "L1_MODULES",
    "L1Kernel",
    "L1KernelError",
    "ensure_l1_kernel",
    "module_load_order",
    "testbed_dir",
)

#: Modules L1 needs, by module name; their dependencies are added ahead of them.
#: virtio_rng seeds the CRNG early, so its static-key flip happens before CMD starts.
L1_MODULES = (
    "virtio_rng", "irqbypass", "kvm", "ccp", "kvm_amd", "netfs", "9pnet", "9pnet_virtio", "9p",
)  # fmt: skip
_SUITE = "bookworm-backports"
_PACKAGE_PREFIX = "linux-image-6.12."
_PACKAGE_RE = re.compile(r"linux-image-6\.12\.\d+\+deb12(?:\.\d+)?-amd64-unsigned")
_MANIFEST = "l1kernel.json"
#: Kernel directories replaced by a newer fetch are deleted once this old (runs may still use them).
_STALE_S = 24 * 3600.0
#: A decompressed module larger than this is not a kernel module (guards bombs).
_MAX_MODULE = 64 << 20


class L1KernelError(RuntimeError):
    """The L1 kernel could not be fetched or prepared; one line saying why."""


@dataclass(frozen=True)
class L1Kernel:
    """A prepared L1 kernel.

    :param package: Debian package name it came from.
    :param version: Debian package version.
    :param release: kernel release (``uname -r``).
    :param vmlinuz: bzImage path.
    :param modules: decompressed ``.ko`` files in load order.
    """

    package: str
    version: str
    release: str
    vmlinuz: Path
    modules: tuple[Path, ...]


def testbed_dir() -> Path:
    """Where the testbed keeps its kernel, apt state and initramfs."""
    return tools_dir() / "testbed"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _module_name(path: Path) -> str:
    return path.name.split(".ko", 1)[0].replace("-", "_")


def _decompress(path: Path) -> bytes:
    raw = path.read_bytes()
    if not path.name.endswith(".xz"):
        return raw
    dec = lzma.LZMADecompressor()
    data = dec.decompress(raw, max_length=_MAX_MODULE + 1)
    if len(data) > _MAX_MODULE:
        raise L1KernelError(f"{path.name} decompresses to more than {_MAX_MODULE} bytes")
    return data


def _module_depends(ko: bytes) -> list[str]:
    """The ``depends=`` list of a module's ``.modinfo`` section."""
    section = ELFFile(io.BytesIO(ko)).get_section_by_name(".modinfo")
    if section is None:
        return []
    for entry in section.data().split(b"\0"):
        if entry.startswith(b"depends="):
            return [d.replace("-", "_") for d in entry[8:].decode().split(",") if d]
    return []


def module_load_order(wanted: tuple[str, ...], depends: Callable[[str], list[str]]) -> list[str]:
    """Order ``wanted`` and their dependencies so every module follows what it needs.

    :param depends: maps a module name to the names it depends on.
    :raises L1KernelError: on a dependency cycle.
    """
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order:
            return
        if name in visiting:
            raise L1KernelError(f"module dependency cycle through {name}")
        visiting.add(name)
        for dep in depends(name):
            visit(dep)
        visiting.discard(name)
        order.append(name)

    for name in wanted:
        visit(name)
    return order


def _prepare(tree: Path, dest: Path) -> tuple[str, Path, list[Path]]:
    """From an extracted package tree, copy vmlinuz and decompress the needed modules."""
    vmlinuzes = sorted((tree / "boot").glob("vmlinuz-*"))
    if len(vmlinuzes) != 1:
        raise L1KernelError(f"expected one boot/vmlinuz-* in the package, found {len(vmlinuzes)}")
    release = vmlinuzes[0].name.removeprefix("vmlinuz-")
    kdir = next(
        (
            p
            for p in (tree / "lib/modules" / release, tree / "usr/lib/modules" / release)
            if p.is_dir()
        ),
        None,
    )
    if kdir is None:
        raise L1KernelError(f"no modules directory for {release} in the package")
    files = {_module_name(p): p for p in kdir.rglob("*.ko*")}
    blobs: dict[str, bytes] = {}

    def depends(name: str) -> list[str]:
        if name not in files:
            raise L1KernelError(f"module {name} is not in the L1 kernel package")
        blobs[name] = _decompress(files[name])
        return _module_depends(blobs[name])

    order = module_load_order(L1_MODULES, depends)
    (dest / "modules").mkdir(parents=True)
    modules = []
    for name in order:
        out = dest / "modules" / f"{name}.ko"
        out.write_bytes(blobs[name])
        modules.append(out)
    shutil.copy2(vmlinuzes[0], dest / "vmlinuz")
    return release, dest / "vmlinuz", modules


def _load_manifest(base: Path) -> L1Kernel | None:
    try:
        meta = json.loads((base / _MANIFEST).read_text())
        k = L1Kernel(
            package=meta["package"], version=meta["version"], release=meta["release"],
            vmlinuz=base / meta["vmlinuz"], modules=tuple(base / m for m in meta["modules"]),
        )  # fmt: skip
        if meta.get("wanted") != list(L1_MODULES):
            return None  # prepared for another module set: prepare again
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return k if k.vmlinuz.is_file() and all(m.is_file() for m in k.modules) else None


def _fetch(base: Path, log: Callable[[str], None]) -> L1Kernel:
    try:
        apt = PrivateApt(_SUITE, base / "apt")
        apt.update(force=True)  # fetching means finding the newest: fresh lists
        package, version = apt.newest(_PACKAGE_RE, _PACKAGE_PREFIX)
        log(f"testbed: fetching L1 kernel {package} {version}")
        with tempfile.TemporaryDirectory(prefix="fetch-", dir=base) as tmp:
            deb = apt.download(package, Path(tmp))
            tree = Path(tmp) / "tree"
            subprocess.run(["dpkg-deb", "-x", str(deb), str(tree)], check=True, capture_output=True)
            deb.unlink()
            stage = Path(tmp) / "stage"
            release, _, modules = _prepare(tree, stage)
            # A new name per module set: runs still reading an older set are not disturbed.
            name = f"l1-{release}-{hashlib.sha256(' '.join(L1_MODULES).encode()).hexdigest()[:8]}"
            shutil.rmtree(base / name, ignore_errors=True)
            os.replace(stage, base / name)
    except (AptError, OSError, subprocess.CalledProcessError) as exc:
        raise L1KernelError(f"cannot fetch the testbed L1 kernel: {exc}") from exc
    meta = {
        "package": package, "version": version, "release": release,
        "vmlinuz": f"{name}/vmlinuz",
        "modules": [f"{name}/modules/{m.name}" for m in modules],
        "wanted": list(L1_MODULES),
    }  # fmt: skip
    tmp_manifest = base / (_MANIFEST + ".tmp")
    tmp_manifest.write_text(json.dumps(meta, indent=1))
    os.replace(tmp_manifest, base / _MANIFEST)
    loaded = _load_manifest(base)
    assert loaded is not None
    return loaded


def ensure_l1_kernel(
    *, refresh: bool = False, log: Callable[[str], None] = lambda _m: None
) -> L1Kernel:
    """Return the cached L1 kernel, fetching the newest one first if needed.

    Safe to call from concurrent processes (a lock file serialises the fetch).

    :param refresh: re-resolve the newest package even if one is cached.
    :param log: receives one-line progress messages.
    :raises L1KernelError: the fetch or preparation failed.
    """
    base = testbed_dir()
    with _locked(base / ".lock"):
        if not refresh and (cached := _load_manifest(base)) is not None:
            return cached
        kernel = _fetch(base, log)
        for old in base.glob("l1-*"):
            if old != kernel.vmlinuz.parent and time.time() - old.stat().st_mtime > _STALE_S:
                shutil.rmtree(old, ignore_errors=True)
        return kernel
