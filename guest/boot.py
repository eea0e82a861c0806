"""Boot-time steps of PID 1: mounts, the image sentinel, kernel modules, the bulk port.

Every function takes the filesystem ``root`` and the :class:`~guest.syscalls.System` as
arguments so tests run them against a temporary directory and a fake.
"""

from __future__ import annotations

import errno
import os
import time
from collections import namedtuple

TYPE_CHECKING = False  # typing, dataclasses, pathlib cost ~3 s of guest startup under TCG
if TYPE_CHECKING:
    from guest.syscalls import System

    StrPath = str | os.PathLike[str]

__all__ = (
    "BULK_PORT_NAME",
    "IMAGE_ID",
    "LOAD_ORDER",
    "MOUNTS",
    "SENTINEL",
    "ModuleLoad",
    "Mount",
    "check_image",
    "find_bulk_port",
    "load_modules",
    "mount_all",
)

IMAGE_ID = "etc/schedlab-image-id"  # written first into the initramfs
SENTINEL = "schedlab.sentinel"  # written last; same content as IMAGE_ID
LOAD_ORDER = "schedlab-load-order"  # in lib/modules/<release>/
BULK_PORT_NAME = "org.schedlab.bulk"

_MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 0x2, 0x4, 0x8
_SAFE = _MS_NOSUID | _MS_NODEV | _MS_NOEXEC


#: One entry of :data:`MOUNTS` (target relative to the root); a failed ``required``
#: mount ends the run.
Mount = namedtuple("Mount", "source target fstype flags required", defaults=(0, True))


#: In order: later targets live inside earlier mounts.
MOUNTS = (
    Mount("proc", "proc", "proc", _SAFE),
    Mount("sysfs", "sys", "sysfs", _SAFE),
    Mount("devtmpfs", "dev", "devtmpfs", _MS_NOSUID),
    Mount("cgroup2", "sys/fs/cgroup", "cgroup2", _SAFE),
    Mount("tracefs", "sys/kernel/tracing", "tracefs", _SAFE, required=False),
    Mount("debugfs", "sys/kernel/debug", "debugfs", _SAFE, required=False),
    Mount("bpf", "sys/fs/bpf", "bpf", _SAFE, required=False),
    Mount("tmpfs", "tmp", "tmpfs", _MS_NOSUID | _MS_NODEV),
    Mount("tmpfs", "run", "tmpfs", _MS_NOSUID | _MS_NODEV),
)


def mount_all(system: System, root: StrPath, mounts: tuple[Mount, ...] = MOUNTS) -> list[str]:
    """Mount :data:`MOUNTS` under ``root`` (creating missing mount points).

    An EBUSY (already mounted, e.g. a devtmpfs automount) counts as success.

    :return: one message per failed mount; a message starting with ``"required"`` means
        the run cannot go on.
    """
    errors = []
    for m in mounts:
        target = os.path.join(root, m.target)
        try:
            if not os.path.isdir(target):
                os.makedirs(target)
            system.mount(m.source, target, m.fstype, m.flags)
        except OSError as e:
            if e.errno == errno.EBUSY:
                continue
            kind = "required" if m.required else "optional"
            errors.append(f"{kind} mount {m.fstype} on /{m.target}: {e.strerror or e}")
    return errors


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read(4096)


def check_image(root: StrPath) -> str:
    """Check that the initramfs was unpacked whole.

    :return: "" when ``/schedlab.sentinel`` exists and holds the same non-empty id as
        ``/etc/schedlab-image-id``; otherwise what is wrong.
    """
    try:
        image_id = _read_bytes(os.path.join(root, IMAGE_ID)).strip()
    except OSError as e:
        return f"/{IMAGE_ID} unreadable ({e.strerror}): image truncated or not a schedlab image"
    try:
        sentinel = _read_bytes(os.path.join(root, SENTINEL)).strip()
    except OSError as e:
        return f"/{SENTINEL} unreadable ({e.strerror}): initramfs truncated"
    if not image_id:
        return f"/{IMAGE_ID} is empty"
    if sentinel != image_id:
        return f"/{SENTINEL} {sentinel[:64]!r} != image id {image_id[:64]!r}: initramfs truncated"
    return ""


class ModuleLoad(namedtuple("ModuleLoad", "name status error", defaults=("",))):
    """Outcome of one module: ``status`` is ``loaded``, ``present`` or ``failed``."""

    __slots__ = ()

    def as_map(self) -> dict[str, str]:
        """Plain map for a frame payload."""
        return {"name": self.name, "status": self.status, "error": self.error}


def _module_name(path: str) -> str:
    return os.path.basename(path).removesuffix(".ko").replace("-", "_")


def _load_one(system: System, root: StrPath, path: str) -> ModuleLoad:
    name = _module_name(path)
    if os.path.isdir(os.path.join(root, "sys/module", name)):  # built in, or loaded
        return ModuleLoad(name, "present")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        return ModuleLoad(name, "failed", f"open {path}: {e.strerror}")
    try:
        system.finit_module(fd)
    except OSError as e:
        if e.errno == errno.EEXIST:
            return ModuleLoad(name, "present")
        return ModuleLoad(name, "failed", f"finit_module: {e.strerror or e}")
    finally:
        os.close(fd)
    return ModuleLoad(name, "loaded")


def load_modules(system: System, root: StrPath, release: str) -> list[ModuleLoad]:
    """Load the modules listed in ``/lib/modules/<release>/schedlab-load-order``.

    Each non-blank, non-``#`` line is a decompressed ``.ko`` path, relative to the
    release's module directory (or absolute within ``root``). A missing list means no
    modules were requested.
    """
    moddir = os.path.join(root, "lib/modules", release)
    try:
        with open(os.path.join(moddir, LOAD_ORDER)) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return []
    except OSError as e:
        return [ModuleLoad(LOAD_ORDER, "failed", f"read: {e.strerror}")]
    out = []
    for line in (ln.strip() for ln in lines):
        if line and not line.startswith("#"):
            base = root if line.startswith("/") else moddir
            out.append(_load_one(system, root, os.path.join(base, line.lstrip("/"))))
    return out


def _ports(root: StrPath, limit: int = 1 << 16) -> list[tuple[str, bytes | None]]:
    """``(vportNpM, name)`` of each virtio-serial port in sysfs (None: name unreadable)."""
    ports = os.path.join(root, "sys/class/virtio-ports")
    out: list[tuple[str, bytes | None]] = []
    for entry in sorted(os.listdir(ports))[:limit]:  # OSError: no such class (yet)
        try:
            out.append((entry, _read_bytes(os.path.join(ports, entry, "name")).strip()))
        except OSError:
            out.append((entry, None))
    return out


def _scan_ports(root: StrPath, name: str) -> str | None:
    try:
        ports = _ports(root)
    except OSError:
        return None
    for entry, seen in ports:
        if seen == name.encode():
            dev = os.path.join(root, "dev", entry)
            return dev if os.path.exists(dev) else None
    return None


def seen_ports(root: StrPath, limit: int = 8) -> str:
    """The virtio-serial ports present and their names, for a not-found line on COM2."""
    try:
        ports = _ports(root, limit)
    except OSError as e:
        return f"no {os.path.join(root, 'sys/class/virtio-ports')} ({e.strerror})"
    shown = [
        f"{e}={'?' if n is None else n[:64].decode(errors='replace') or '-'}" for e, n in ports
    ]
    return ", ".join(shown) or "none"


def find_bulk_port(
    root: StrPath, timeout_s: float = 5.0, name: str = BULK_PORT_NAME, poll_s: float = 0.005
) -> str | None:
    """Wait (bounded) for the virtio-serial port called ``name`` and its device node.

    The port appears asynchronously (the virtio_console multiport handshake), about
    28 ms after init starts under TCG.

    :return: ``/dev/vportNpM`` under ``root``, or None after ``timeout_s``.
    """
    end = time.monotonic() + timeout_s
    while True:
        dev = _scan_ports(root, name)
        if dev is not None or time.monotonic() >= end:
            return dev
        time.sleep(poll_s)
