"""The host toolchain that builds sched_ext schedulers: Debian's clang-19 and friends.

BPF objects are compiled by the clang the ``ziglang`` wheel ships (clang 22) when it is
installed (a dependency of schedlab): clang-19 miscompiles arena pointers (it stores through
a pointer it did not ``addr_space_cast``), so the 7.2 verifier refuses ``scx_qmap``
("qmap_dequeue: R7 invalid mem access 'scalar'"). A small wrapper (:func:`bpf_clang`) hands
``-target bpf`` compiles to it and every other call (the Makefile's include probe) to
clang-19.

Each package is proven present by one file or command. Missing ones are installed with
``apt-get install`` when we are root (as the ``schedlab`` launcher does for its own
packages); otherwise :class:`ToolchainError` carries the exact ``apt-get`` line to run.

>>> tc = ensure_toolchain()
>>> tc.clang, tc.llvm_strip
('/usr/bin/clang-19', '/usr/bin/llvm-strip-19')
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from orchestrator.scheduler.errors import ToolchainError
from schedlab_shared.cache import tools_dir

__all__ = (
    "PACKAGES",
    "Toolchain",
    "ToolchainError",
    "bpf_clang",
    "ensure_toolchain",
    "missing_packages",
)

_LLVM = "19"
#: Debian package -> the command (bare name) or file (absolute path) that proves it.
PACKAGES: dict[str, str] = {
    f"clang-{_LLVM}": f"clang-{_LLVM}",
    f"llvm-{_LLVM}": f"llvm-strip-{_LLVM}",
    "libelf-dev": "/usr/include/libelf.h",
    "zlib1g-dev": "/usr/include/zlib.h",
    "pkg-config": "pkg-config",
    "make": "make",
    "gcc": "gcc",
}
_INSTALL_TIMEOUT_S = 1800.0


@dataclass(frozen=True)
class Toolchain:
    """Absolute paths of the tools the sched_ext Makefile is given."""

    clang: str
    llvm_strip: str
    make: str


def _present(probe: str) -> bool:
    return Path(probe).is_file() if probe.startswith("/") else shutil.which(probe) is not None


def missing_packages(present: Callable[[str], bool] = _present) -> list[str]:
    """Debian packages of :data:`PACKAGES` whose probe is absent, in table order."""
    return [pkg for pkg, probe in PACKAGES.items() if not present(probe)]


def apt_line(pkgs: list[str]) -> str:
    """The command a non-root user is told to run."""
    return f"sudo apt-get install -y --no-install-recommends {' '.join(pkgs)}"


def _install(pkgs: list[str], progress: Callable[[str], None]) -> None:
    progress(f"installing {' '.join(pkgs)} with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for args in (["update", "-qq"], ["install", "-y", "-qq", "--no-install-recommends", *pkgs]):
        try:
            res = subprocess.run(
                ["apt-get", *args],
                env=env,
                capture_output=True,
                text=True,
                timeout=_INSTALL_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ToolchainError(
                f"apt-get {args[0]} failed ({exc}); run: {apt_line(pkgs)}"
            ) from exc
        if res.returncode != 0:
            tail = (res.stderr.strip().splitlines() or ["?"])[-1]
            raise ToolchainError(f"apt-get {args[0]} failed: {tail}; run: {apt_line(pkgs)}")


def ensure_toolchain(
    *,
    progress: Callable[[str], None] = lambda _m: None,
    present: Callable[[str], bool] = _present,
    is_root: bool | None = None,
    install: Callable[[list[str], Callable[[str], None]], None] = _install,
) -> Toolchain:
    """Make sure the toolchain is installed and return its tools.

    :param progress: told before a (slow) installation starts.
    :param present: probe function (tests pass a fake).
    :param is_root: override of ``geteuid() == 0`` (tests).
    :param install: installs a list of packages (tests pass a fake).
    :return: the tools; raises :class:`ToolchainError` when packages are missing and we are
        not root, or when the installation fails.
    """
    missing = missing_packages(present)
    if missing:
        if not (os.geteuid() == 0 if is_root is None else is_root):
            raise ToolchainError(
                f"building sched_ext schedulers needs Debian packages "
                f"{', '.join(missing)}; run: {apt_line(missing)}"
            )
        install(missing, progress)
        still = missing_packages(present)
        if still:
            raise ToolchainError(
                f"apt-get installed nothing for {', '.join(still)}; run: {apt_line(still)}"
            )
    tools = [shutil.which(name) for name in (f"clang-{_LLVM}", f"llvm-strip-{_LLVM}", "make")]
    if None in tools:
        raise ToolchainError(
            f"clang-{_LLVM}, llvm-strip-{_LLVM} or make not on PATH after "
            f"installation; run: {apt_line(list(PACKAGES))}"
        )
    clang, strip, make = (str(t) for t in tools)
    return Toolchain(clang=bpf_clang(clang) or clang, llvm_strip=strip, make=make)


# -target bpf -> zig's spelling of the same target; anything else is not a BPF compile.
_WRAPPER = """#!/bin/sh
# schedlab: BPF objects with the ziglang wheel's clang; the rest with {fallback}
bpf=0 prev=
for a do
    shift
    if [ "$prev" = -target ] && [ "$a" = bpf ]; then a=bpfel-freestanding-none bpf=1; fi
    set -- "$@" "$a"
    prev=$a
done
[ $bpf = 1 ] || exec {fallback} "$@"
# zig's defaults add .eh_frame and .llvm_addrsig, sections libbpf's linker refuses.
exec {python} -m ziglang cc -fno-unwind-tables -fno-asynchronous-unwind-tables -fno-addrsig "$@"
"""


def bpf_clang(fallback: str, python: str = sys.executable) -> str | None:
    """The wrapper that compiles BPF with the ziglang wheel's clang, or None without it.

    :param fallback: the clang for everything that is not ``-target bpf``.
    """
    try:
        import ziglang  # noqa: F401 - only its presence matters; it runs as a module
    except ImportError:
        return None
    text = _WRAPPER.format(fallback=fallback, python=python)
    path = tools_dir() / "bpf-clang"
    try:
        if not path.is_file() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(text)
            tmp.chmod(0o755)
            os.replace(tmp, path)
    except OSError:
        return None
    return str(path)
