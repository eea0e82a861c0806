"""Payloads: programs a workload runs in the guest, sent with the run's inputs.

A payload is a host program the guest's ``payload`` work type (:mod:`guest.payload`) runs by
name: its binary travels as an input of kind ``payload`` (``/run/schedlab/inputs/payload/NAME``)
and its shared libraries as kind ``lib`` under their sonames (the guest puts that directory on
``LD_LIBRARY_PATH``). The dynamic loader is the image's own (the host's: the guest runs the
host's Python). stress-ng, from Debian, is the first.

>>> files = payload_files("stress-ng")
>>> [(f.kind, f.name) for f in files][:2]
[('payload', 'stress-ng'), ('lib', 'libEGL.so.1')]
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from orchestrator.initramfs.elfdeps import ElfDepsError, elf_deps, resolve_libraries
from orchestrator.inputs import HostFile

__all__ = ("PAYLOADS", "Payload", "PayloadError", "ensure_program", "payload_files")

KIND_PAYLOAD = "payload"
KIND_LIB = "lib"


class PayloadError(OSError):
    """A payload is unknown, missing or not runnable in the guest; one line for the user."""


@dataclass(frozen=True)
class Payload:
    """A program the guest can run as a workload.

    :param name: what work types call it (``payload`` work type's ``name``).
    :param command: the host command (found on ``PATH``).
    :param apt_package: the Debian package that installs it.
    """

    name: str
    command: str
    apt_package: str


PAYLOADS: dict[str, Payload] = {
    "stress-ng": Payload("stress-ng", "stress-ng", "stress-ng"),
}


def _apt_install(package: str) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", package],
    ):
        subprocess.run(argv, env=env, capture_output=True, check=False, timeout=900)


def ensure_program(p: Payload) -> Path:
    """The payload's host binary, installed from Debian first when it is missing and we are
    root (as the launcher does).

    :raises PayloadError: it is missing (with the apt-get line to run).
    """
    found = shutil.which(p.command)
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        _apt_install(p.apt_package)
        found = shutil.which(p.command)
    if found is None:
        raise PayloadError(
            f"payload {p.name}: {p.command} is not installed; run: "
            f"sudo apt-get install -y --no-install-recommends {p.apt_package}"
        )
    return Path(found).resolve()


def payload_files(name: str, binary: Path | None = None) -> tuple[HostFile, ...]:
    """The inputs that carry payload ``name`` into the guest: its binary and its libraries.

    :param binary: the host program (default: the known payload's, installed if needed).
    :raises PayloadError: an unknown payload, a missing program, an ELF the guest cannot run.
    """
    if binary is None:
        p = PAYLOADS.get(name)
        if p is None:
            raise PayloadError(f"payload {name!r}: unknown; known: {', '.join(sorted(PAYLOADS))}")
        binary = ensure_program(p)
    try:
        deps = elf_deps(binary)
        if deps.machine != "EM_X86_64" or deps.elfclass != 64:
            raise PayloadError(f"payload {name}: {binary} is {deps.machine}, the guest is x86-64")
        libs, _ = resolve_libraries([binary])
    except ElfDepsError as exc:
        raise PayloadError(f"payload {name}: {exc}") from None
    loader = Path(deps.interp).name if deps.interp else ""
    files = [HostFile(KIND_PAYLOAD, binary, name, 0o755)]
    files += [
        HostFile(KIND_LIB, host.resolve(), soname, 0o644)
        for soname, host in sorted(libs.items())
        if soname != loader  # the image's own loader runs it
    ]
    return tuple(files)
