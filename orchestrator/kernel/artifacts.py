"""Kernel artifacts: what a schedlab run needs from a kernel, cached or a user's image.

A cached kernel lives in ``kernels_dir()/<version>/`` with ``vmlinuz``, ``vmlinux``,
``config``, ``modules/`` and ``meta.json`` (written by :mod:`orchestrator.kernel.fetch`).
How ``--kernel`` picks one is :mod:`orchestrator.kernel.resolve`.

>>> k = load_cached(kernels_dir() / "7.2.13+deb14-cloud-amd64")
>>> k.has_sched_ext, k.hz
(True, 250)
>>> user_kernel("/boot/vmlinuz-6.1.0-18-amd64").version
'6.1.0-18-amd64'
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.kernel.image import ImageError, extract_vmlinux, is_bzimage, is_elf, parse_bzimage
from schedlab_shared.cache import cache_root, kernels_dir

__all__ = (
    "FETCH_HINT",
    "KernelArtifacts",
    "KernelError",
    "list_cached",
    "load_cached",
    "parse_config",
    "user_kernel",
)

FETCH_HINT = "run `schedlab kernel fetch`"


class KernelError(RuntimeError):
    """A kernel cannot be found or used; the message is one line saying what to do."""


def parse_config(text: str) -> dict[str, str]:
    """Parse a kernel ``.config``: ``{"CONFIG_HZ": "250", "CONFIG_SCHED_CLASS_EXT": "y"}``.

    Options that are ``# ... is not set`` are absent; string values lose their quotes.
    """
    config: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.startswith("CONFIG_") and not line.startswith("#"):
            config[key.strip()] = value.strip().strip('"')
    return config


@dataclass(frozen=True)
class KernelArtifacts:
    """One usable kernel: the image to boot and what the monitor and initramfs need."""

    version: str
    root: Path
    vmlinuz: Path
    vmlinux: Path | None
    config: dict[str, str] = field(hash=False)
    modules_dir: Path | None
    system_map: Path | None
    meta: dict[str, Any] = field(hash=False)

    def opt(self, name: str) -> str | None:
        """A config value by name, with or without ``CONFIG_`` (None when not set)."""
        return self.config.get(name if name.startswith("CONFIG_") else f"CONFIG_{name}")

    def enabled(self, name: str) -> bool:
        """True when the option is ``y`` (built in)."""
        return self.opt(name) == "y"

    @property
    def has_sched_ext(self) -> bool:
        return self.enabled("SCHED_CLASS_EXT")

    @property
    def has_btf(self) -> bool:
        return self.enabled("DEBUG_INFO_BTF")

    @property
    def hz(self) -> int | None:
        value = self.opt("HZ")
        return int(value) if value and value.isdigit() else None

    @property
    def config_known(self) -> bool:
        """False for a user image with no config beside it (feature checks are guesses)."""
        return bool(self.config)


def _read_config(path: Path | None) -> dict[str, str]:
    return parse_config(path.read_text(errors="replace")) if path and path.is_file() else {}


def _real_system_map(path: Path) -> Path | None:
    # Debian ships a one-line stub System.map pointing at the -dbg package.
    if not path.is_file():
        return None
    with path.open("rb") as fh:
        head = fh.read(4096)
    return path if head.count(b"\n") > 2 else None


def load_cached(root: Path) -> KernelArtifacts:
    """Load the cached kernel stored in ``root`` (a ``kernels_dir()/<version>`` folder)."""
    try:
        meta = json.loads((root / "meta.json").read_text())
    except (OSError, ValueError) as exc:
        raise KernelError(f"{root}: incomplete kernel cache ({exc}); {FETCH_HINT}") from exc
    vmlinuz = root / "vmlinuz"
    if not vmlinuz.is_file():
        raise KernelError(f"{root}: vmlinuz missing; delete the folder and {FETCH_HINT}")
    vmlinux = root / "vmlinux"
    modules = root / "modules"
    return KernelArtifacts(
        version=str(meta.get("version", root.name)),
        root=root,
        vmlinuz=vmlinuz,
        vmlinux=vmlinux if vmlinux.is_file() else None,
        config=_read_config(root / "config"),
        modules_dir=modules if modules.is_dir() else None,
        system_map=_real_system_map(root / "System.map"),
        meta=meta,
    )


def _version_key(version: str) -> list[Any]:
    return [(0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.+~-]", version)]


def list_cached() -> list[KernelArtifacts]:
    """All complete kernels in the cache, oldest version first."""
    root = kernels_dir()
    found = []
    if root.is_dir():
        for sub in root.iterdir():
            if sub.is_dir() and not sub.name.startswith(".") and (sub / "meta.json").is_file():
                try:
                    found.append(load_cached(sub))
                except KernelError:
                    continue
    return sorted(found, key=lambda k: _version_key(k.version))


def _user_vmlinux(spec: str, image: Path, data: bytes) -> Path:
    """A vmlinux for a user's bzImage: beside it, else decompressed once into the cache."""
    for cand in (image.with_name("vmlinux"), image.parent.parent / "vmlinux"):
        if cand.is_file() and cand != image:
            return cand
    digest = hashlib.sha256(data).hexdigest()[:32]
    dest = cache_root() / "vmlinux" / f"{digest}.vmlinux"
    if not dest.is_file():
        try:
            elf = extract_vmlinux(data)
        except ImageError as exc:
            raise KernelError(f"--kernel {spec}: cannot decompress its vmlinux: {exc}") from exc
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f"{dest.name}.{os.getpid()}.tmp")
        tmp.write_bytes(elf)
        tmp.replace(dest)
    return dest


def _beside(image: Path, names: list[str]) -> Path | None:
    for name in names:
        cand = image.parent / name
        if cand.is_file():
            return cand
    return None


def user_kernel(spec: str) -> KernelArtifacts:
    """The artifacts of a user's kernel image (``--kernel PATH``): a bzImage or an ELF vmlinux."""
    image = Path(spec).expanduser()
    if not image.exists():
        raise KernelError(
            f"--kernel {spec}: no such file; pass a vmlinuz/bzImage path, a cached "
            f"version (`schedlab kernel list`), or nothing for the default"
        )
    if not image.is_file() or not os.access(image, os.R_OK):
        raise KernelError(f"--kernel {spec}: not a readable file")
    data = image.read_bytes()
    if is_bzimage(data):
        try:
            version = parse_bzimage(data).kernel_version
        except ImageError as exc:
            raise KernelError(f"--kernel {spec}: broken bzImage ({exc})") from exc
        vmlinuz, vmlinux = image, _user_vmlinux(spec, image, data)
    elif is_elf(data):
        # An ELF vmlinux boots under QEMU through its PVH note; keep it as both.
        version, vmlinuz, vmlinux = None, image, image
    else:
        raise KernelError(
            f"--kernel {spec}: not a Linux kernel image (no bzImage header, not an "
            f"ELF); pass a vmlinuz/bzImage or {FETCH_HINT}"
        )
    version = version or re.sub(r"^(vmlinuz|vmlinux|bzImage)-?", "", image.name) or image.name
    config = _beside(image, ["config", ".config", f"config-{version}"])
    if config is None and image.parent.name == "boot":
        config = _beside(image, [f"config-{version}"])
    modules = next(
        (
            p
            for p in (image.parent / "modules", Path("/lib/modules") / version)
            if (p / "kernel").is_dir()
        ),
        None,
    )
    system_map = _beside(image, ["System.map", f"System.map-{version}"])
    return KernelArtifacts(
        version=version,
        root=image.parent,
        vmlinuz=vmlinuz,
        vmlinux=vmlinux,
        config=_read_config(config),
        modules_dir=modules,
        system_map=_real_system_map(system_map) if system_map else None,
        meta={"source": "user", "path": str(image)},
    )
