"""Micro-guests: tiny x86 programs assembled at test time and run on /dev/kvm.

Sources live in tests/framework/guests/*.S (GNU as; ``.code16``/``.code64`` inside) and are
linked flat at ``CODE_ADDR`` with ``as`` + ``ld --oformat binary``. Binaries are cached by
content hash in one temporary directory, removed at interpreter exit.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from vmm_proc.kvm.exits import (
    FailEntry,
    Hlt,
    InternalError,
    Interrupted,
    IoIn,
    IoOut,
    MmioRead,
    Shutdown,
    SystemEvent,
    Unsupported,
    VcpuExit,
)
from vmm_proc.kvm.kick import install_kick_handler, kick
from vmm_proc.kvm.minivm import CODE_ADDR, MiniVm

from .prereq import missing

__all__ = ("GUESTS", "MicroVm", "assemble", "guest", "require_kvm", "require_tools", "serial_bytes")

GUESTS = Path(__file__).with_name("guests")
SERIAL_PORT = 0x3F8
_STOP = (Hlt, Shutdown, SystemEvent, FailEntry, InternalError, Unsupported, Interrupted)
_cache_dir: str | None = None
_cache_lock = threading.Lock()


def require_kvm() -> None:
    """Skip (fail under CI) unless /dev/kvm can be opened read-write."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        missing("/dev/kvm is missing or not accessible")


def require_tools() -> None:
    """Skip (fail under CI) unless GNU as and ld are installed."""
    missing = [tool for tool in ("as", "ld") if shutil.which(tool) is None]
    if missing:
        missing(f"binutils missing: {', '.join(missing)}")


def _cache() -> str:
    global _cache_dir
    with _cache_lock:
        if _cache_dir is None:
            _cache_dir = tempfile.mkdtemp(prefix="schedlab-microguest-")
            atexit.register(shutil.rmtree, _cache_dir, True)
        return _cache_dir


def assemble(source: str, base: int = CODE_ADDR) -> bytes:
    """Assemble and link ``source`` (GNU as text) into a flat binary loaded at ``base``.

    :raises subprocess.CalledProcessError: with the assembler's message on a bad source.
    """
    key = hashlib.sha256(f"{base:#x}\n{source}".encode()).hexdigest()[:24]
    out = os.path.join(_cache(), f"{key}.bin")
    if not os.path.exists(out):
        src, obj = os.path.join(_cache(), f"{key}.S"), os.path.join(_cache(), f"{key}.o")
        Path(src).write_text(source)
        subprocess.run(["as", "--64", "-o", obj, src], check=True, capture_output=True, text=True)
        tmp = f"{out}.{os.getpid()}.{threading.get_ident()}"
        subprocess.run(
            ["ld", "-m", "elf_x86_64", "-N", f"-Ttext={base:#x}", "-e", "start",
             "--oformat", "binary", "-o", tmp, obj],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        os.replace(tmp, out)
    return Path(out).read_bytes()


def guest(name: str, base: int = CODE_ADDR) -> bytes:
    """Assemble tests/framework/guests/<name>.S."""
    return assemble((GUESTS / f"{name}.S").read_text(), base)


def serial_bytes(exits: list[VcpuExit], port: int = SERIAL_PORT) -> bytes:
    """Concatenate the data of every IoOut to ``port``."""
    return b"".join(e.data for e in exits if isinstance(e, IoOut) and e.port == port)


class MicroVm(MiniVm):
    """A MiniVm plus a bounded dispatch loop for tests.

    ``run()`` answers IoIn/MmioRead through the given callbacks (zeros by default), records
    every exit and stops at the first HLT, shutdown, error or kick. A watchdog kicks the
    vCPU after ``timeout`` seconds so a looping guest cannot hang the test.
    """

    def __init__(self, mem_size: int = 1 << 20, vcpus: int = 1, disable_exits: int = 0) -> None:
        install_kick_handler()
        super().__init__(mem_size, vcpus, "microguest", disable_exits)

    def run(
        self,
        index: int = 0,
        max_exits: int = 1000,
        timeout: float = 10.0,
        io_in: Callable[[IoIn], bytes] | None = None,
        mmio_read: Callable[[MmioRead], bytes] | None = None,
    ) -> list[VcpuExit]:
        """Run vCPU ``index`` until a stop exit or ``max_exits`` exits; return them all."""
        cpu = self.vcpus[index]
        ident = threading.get_ident()
        watchdog = threading.Timer(timeout, kick, (cpu, ident))
        watchdog.start()
        exits: list[VcpuExit] = []
        try:
            for _ in range(max_exits):
                ex = cpu.run()
                exits.append(ex)
                if isinstance(ex, IoIn):
                    ex.reply(io_in(ex) if io_in else bytes(ex.size * ex.count))
                elif isinstance(ex, MmioRead):
                    ex.reply(mmio_read(ex) if mmio_read else bytes(ex.length))
                elif isinstance(ex, _STOP):
                    break
        finally:
            watchdog.cancel()
        return exits
