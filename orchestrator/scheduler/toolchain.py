"""The host toolchain that builds sched_ext schedulers: Debian's clang-19 and friends.

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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from orchestrator.scheduler.errors import ToolchainError

__all__ = ("PACKAGES", "Toolchain", "ToolchainError", "ensure_toolchain", "missing_packages")

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
    return Toolchain(clang=clang, llvm_strip=strip, make=make)
