"""Build (and cache) the initramfs a schedlab guest boots with.

Image contract (what ``guest/init.py`` can rely on):

- ``/init`` (0755) is :data:`INIT_STUB`: ``/usr/bin/python3 -S`` imports ``guest.init`` from
  ``/usr/lib/schedlab`` and calls ``main()``. ``/dev/console`` (5:1) exists so PID 1 has
  stdio before devtmpfs is mounted, and ``/dev/urandom`` for Python's startup; ``/proc``, ``/sys``, ``/dev``, ``/tmp``, ``/run`` are
  empty mount points.
- ``/etc/schedlab-image-id`` is the FIRST file and ``/schedlab.sentinel`` the LAST entry of
  the archive; both hold the image id (64 lowercase hex digits, no newline). If the sentinel
  is missing or differs from the id, the kernel unpacked a truncated image: report it and
  power off.
- Python: ``/usr/bin/python3``, stdlib subset at ``/usr/lib/python3.X`` (sourceless ``.pyc``,
  msgpack included), see :mod:`orchestrator.initramfs.pyruntime`. The guest package is at
  ``/usr/lib/schedlab/guest`` as ``.py`` with valid ``__pycache__`` entries.
- Kernel modules asked for by name are at ``/lib/modules/<version>/<path>.ko``
  (decompressed, dependencies included), and ``/lib/modules/<version>/schedlab-load-order``
  lists their absolute paths one per line, dependencies first: load them in that order with
  ``finit_module(2)`` (there is no kmod in the image).
- The native work loops (``_schedlab_work`` and cffi's ``_cffi_backend``, built from the guest
  tree's ``native/`` sources by :mod:`orchestrator.native.build`) are at ``/usr/lib/schedlab``,
  their libraries resolved like the interpreter's.
- ``extra_files`` are added last (before the sentinel) and replace runtime files of the same
  path; bytes starting with ``#!`` or an ELF magic get mode 0755, a ``Path`` keeps its mode.

Images are cached in ``images_dir()/<id>.cpio``; the id hashes every input (runtime
fingerprint, guest sources, module files, extra files), so an unchanged rebuild is a
lookup.

>>> path = build_initramfs(resolve_kernel(None), modules=["virtio_mmio"])
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

from orchestrator.initramfs.cpio import CpioArchive
from orchestrator.initramfs.pyruntime import (
    PYVER,
    collect_runtime,
    compile_pyc,
    runtime_fingerprint,
)
from orchestrator.kernel.artifacts import KernelArtifacts, KernelError
from orchestrator.kernel.modules import ModuleError, ModuleIndex, module_name
from schedlab_shared.cache import images_dir

__all__ = (
    "IMAGE_ID_PATH",
    "INIT_STUB",
    "LOAD_ORDER_NAME",
    "SENTINEL_PATH",
    "build_initramfs",
    "default_guest_src",
)

INIT_STUB = (
    b"#!/usr/bin/python3 -S\n"
    b'import sys; sys.path.insert(0, "/usr/lib/schedlab")\n'
    b"from guest.init import main\n"
    b"main()\n"
)
IMAGE_ID_PATH = "etc/schedlab-image-id"
SENTINEL_PATH = "schedlab.sentinel"
LOAD_ORDER_NAME = "schedlab-load-order"
GUEST_DIR = "usr/lib/schedlab/guest"
_FORMAT = b"schedlab-initramfs-v2"  # bump whenever the fixed entries change
_MOUNT_POINTS = ("dev", "proc", "sys", "tmp", "run", "root", "etc", "usr/bin")
_EXEC_MAGICS = (b"#!", b"\x7fELF")

FileMap = dict[str, tuple[bytes, int]]


KEEP_IMAGES = 8


def default_guest_src() -> Path:
    """The repository's ``guest`` package directory (found through its import)."""
    import guest

    return Path(guest.__file__).resolve().parent


def _guest_files(guest_src: Path) -> FileMap:
    files: FileMap = {}
    for src in sorted(guest_src.rglob("*")):
        rel = src.relative_to(guest_src)
        if not src.is_file() or "__pycache__" in rel.parts or src.suffix == ".pyc":
            continue
        data = src.read_bytes()
        dest = f"{GUEST_DIR}/{rel.as_posix()}"
        files[dest] = (data, 0o644)
        if src.suffix == ".py":
            tag = f"cpython-{PYVER.replace('.', '')}"
            cache = f"{GUEST_DIR}/{rel.parent.as_posix()}/__pycache__/{src.stem}.{tag}.pyc"
            files[cache.replace("/./", "/")] = (compile_pyc(data, "/" + dest), 0o644)
    if f"{GUEST_DIR}/__init__.py" not in files:
        raise FileNotFoundError(f"{guest_src}: not a Python package (no __init__.py)")
    return files


def _module_files(kernel: KernelArtifacts | None, names: list[str]) -> tuple[list[str], FileMap]:
    """(guest load order, files) for the requested kernel modules."""
    if not names:
        return [], {}
    if kernel is None or kernel.modules_dir is None:
        raise KernelError(f"modules {names} requested but the kernel has no module tree")
    try:
        index = ModuleIndex(kernel.modules_dir)
        order = index.load_order(names)
        files: FileMap = {}
        guest_paths = []
        for rel in order:
            plain_rel = rel[: rel.index(".ko") + 3]
            dest = f"lib/modules/{kernel.version}/{plain_rel}"
            files[dest] = (index.read_plain(rel), 0o644)
            guest_paths.append("/" + dest)
    except ModuleError as exc:
        raise KernelError(f"kernel {kernel.version}: {exc}") from exc
    listing = "".join(p + "\n" for p in guest_paths).encode()
    files[f"lib/modules/{kernel.version}/{LOAD_ORDER_NAME}"] = (listing, 0o644)
    return [module_name(p) for p in guest_paths], files


def _extra_files(extra: dict[str, bytes | Path]) -> FileMap:
    files: FileMap = {}
    for dest, content in sorted(extra.items()):
        if isinstance(content, Path):
            data = content.read_bytes()
            mode = stat.S_IMODE(content.stat().st_mode)
        else:
            data = bytes(content)
            mode = 0o755 if data.startswith(_EXEC_MAGICS) else 0o644
        files[dest.strip("/")] = (data, mode)
    return files


def _native_files(guest_src: Path) -> dict[str, Path]:
    """The native extension for this guest tree (none when it has no ``native/`` sources)."""
    if not (guest_src / "native" / "work.c").is_file():
        return {}
    from orchestrator.native.build import build_native, image_files

    return image_files(build_native(guest_src / "native"))


def _input_id(
    guest: FileMap, mods: FileMap, extra: FileMap, kernel: KernelArtifacts | None, strip: bool
) -> str:
    h = hashlib.sha256(_FORMAT)
    h.update(runtime_fingerprint().encode())
    h.update(f"strip={strip};kernel={kernel.version if kernel else None}".encode())
    h.update(INIT_STUB)
    for group in (guest, mods, extra):
        h.update(b"\0group")
        for dest, (data, mode) in sorted(group.items()):
            if not dest.endswith(".pyc"):  # pycs derive from sources hashed here
                h.update(f"\0{dest}\0{mode:o}\0{len(data)}\0".encode())
                h.update(data)
    return h.hexdigest()


def _archive(image_id: str, parts: list[FileMap]) -> CpioArchive:
    arc = CpioArchive()
    for d in _MOUNT_POINTS:
        arc.add_dirs(d)
    arc.add_char_device("dev/console", 5, 1)
    arc.add_char_device("dev/null", 1, 3, 0o666)
    # Python reads these at startup, before init mounts devtmpfs, when getrandom() would
    # block: a guest CPU without RDRAND and no seed from the loader (QEMU 7.2 gives none).
    arc.add_char_device("dev/random", 1, 8, 0o666)
    arc.add_char_device("dev/urandom", 1, 9, 0o666)
    arc.add_file(IMAGE_ID_PATH, image_id.encode())
    merged: FileMap = {}
    for part in parts:
        merged.update(part)  # later parts win: extra files may replace runtime files
    for dest, (data, mode) in merged.items():
        parent = dest.rpartition("/")[0]
        if parent:
            arc.add_dirs(parent)
        arc.add_file(dest, data, mode)
    arc.add_symlink("bin", "usr/bin")
    arc.add_file("init", INIT_STUB, 0o755)
    arc.add_file(SENTINEL_PATH, image_id.encode())
    return arc


def build_initramfs(
    kernel: KernelArtifacts | None,
    *,
    modules: list[str] | None = None,
    extra_files: dict[str, bytes | Path] | None = None,
    guest_src: Path | None = None,
    strip: bool = True,
) -> Path:
    """Return the path of an initramfs (newc cpio, uncompressed) for ``kernel``.

    :param kernel: the kernel whose modules are packed (None when ``modules`` is empty).
    :param modules: module names (``kvm-amd``, ``virtio_mmio``); dependencies are added.
    :param extra_files: guest path -> content (bytes or a host file).
    :param guest_src: the guest package directory, named ``guest``; default: the repo's.
    :param strip: strip ELF files of the runtime.
    :return: ``images_dir()/<image id>.cpio`` (built only if not cached).
    """
    src = (guest_src or default_guest_src()).resolve()
    guest = _guest_files(src)
    names, mods = _module_files(kernel, list(modules or []))
    extra = _extra_files(dict(extra_files or {}))
    native = _native_files(src)
    hashed_extra = {**extra, **{f"native:{k}": (p.read_bytes(), 0o755) for k, p in native.items()}}
    image_id = _input_id(guest, mods, hashed_extra, kernel, strip)
    out_dir = images_dir()
    dest = out_dir / f"{image_id}.cpio"
    if dest.is_file():
        os.utime(dest)  # most recently used: kept by _prune
        return dest
    runtime = collect_runtime(src, strip=strip, extensions=native)
    arc = _archive(image_id, [runtime.files, guest, mods, extra])
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".{image_id}.{os.getpid()}.tmp"
    try:
        with tmp.open("wb") as fh:
            size = arc.write(fh)
        manifest = {
            "id": image_id,
            "size": size,
            "entries": len(arc),
            "modules": names,
            "kernel": kernel.version if kernel else None,
            "python_modules": len(runtime.modules),
            "runtime_bytes": runtime.total_size,
        }
        (out_dir / f"{image_id}.json").write_text(json.dumps(manifest, indent=2) + "\n")
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)
    _prune(out_dir, keep=KEEP_IMAGES)
    return dest


def _prune(out_dir: Path, keep: int) -> None:
    """Drop all but the ``keep`` most recently used images (each is ~16 MiB)."""
    images = sorted(out_dir.glob("*.cpio"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in images[keep:]:
        old.unlink(missing_ok=True)
        old.with_suffix(".json").unlink(missing_ok=True)
