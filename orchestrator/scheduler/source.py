"""The part of a kernel's source tree that builds ``tools/sched_ext``, cached once per release.

The tree comes from Debian's ``linux-source-<major.minor>`` package (a 164 MB ``.deb``
holding ``usr/src/linux-source-X.Y.tar.xz``) through the private apt state of
:mod:`orchestrator.private_apt`. Only :data:`SOURCE_MEMBERS` are extracted (about 6 MB,
measured by tracing a full build); the ``.deb`` is deleted after. The tree lives in
``schedulers_dir()/source/linux-source-X.Y_<version>/`` and is never written by a build
(``make O=`` puts every output elsewhere), so all kernels of that release share it.

>>> src = ensure_source(resolve_kernel(None))
>>> src.root / "tools/sched_ext/Makefile", src.version
(PosixPath('.../source/linux-source-7.2_7.2.13-1/tools/sched_ext/Makefile'), '7.2.13-1')
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from orchestrator.kernel.artifacts import KernelArtifacts
from orchestrator.private_apt import AptError, PrivateApt
from orchestrator.scheduler.errors import SourceError
from schedlab_shared.cache import cache_root

__all__ = (
    "SOURCE_MEMBERS",
    "KernelSource",
    "SourceError",
    "ensure_source",
    "release_of",
    "schedulers_dir",
    "wanted_version",
)

#: Paths of the source tree the examples' build reads (traced: opens during a full build).
SOURCE_MEMBERS = (
    "tools/sched_ext",
    "tools/lib/bpf",
    "tools/bpf/bpftool",
    "tools/include",
    "tools/arch/x86",
    "tools/scripts",
    "tools/build",
    "include/uapi/linux/bpf.h",
    "include/uapi/linux/bpf_common.h",
    "include/uapi/linux/if_xdp.h",
    "kernel/bpf/disasm.c",
    "kernel/bpf/disasm.h",
    "scripts/bpf_doc.py",
)
_SUITE = "sid"
_STAMP = ".schedlab-source.json"
_EXTRACT_TIMEOUT_S = 900.0


class AptClient(Protocol):
    """What this module needs of :class:`orchestrator.private_apt.PrivateApt`."""

    suite: str

    def update(self, *, force: bool = False) -> bool: ...

    def show(self, pkg: str) -> dict[str, str]: ...

    def download(self, pkg: str, dest: Path) -> Path: ...


@dataclass(frozen=True)
class KernelSource:
    """An extracted source subset: ``root`` holds ``tools/sched_ext`` and what it needs."""

    package: str
    version: str
    root: Path


def schedulers_dir() -> Path:
    """``cache_root()/schedulers``: one folder per kernel, plus ``source/`` and ``logs/``."""
    return cache_root() / "schedulers"


def release_of(kernel_version: str) -> str:
    """``7.2.13+deb14-cloud-amd64`` -> ``7.2`` (the ``linux-source-X.Y`` suffix)."""
    m = re.match(r"^(\d+)\.(\d+)", kernel_version)
    if not m:
        raise SourceError(
            f"kernel version {kernel_version!r} has no major.minor: cannot pick "
            f"a linux-source package for it"
        )
    return f"{m.group(1)}.{m.group(2)}"


def wanted_version(kernel: KernelArtifacts) -> str | None:
    """The Debian package version of a fetched kernel (``7.2.13-1``), None for user kernels."""
    packages = kernel.meta.get("packages")
    if not isinstance(packages, dict):
        return None
    for name, version in sorted(packages.items()):
        if name.startswith(("linux-binary-", "linux-image-")) and isinstance(version, str):
            return version
    return None


def _cached(package: str) -> dict[str, KernelSource]:
    found: dict[str, KernelSource] = {}
    for stamp in (schedulers_dir() / "source").glob(f"{package}_*/{_STAMP}"):
        try:
            meta = json.loads(stamp.read_text())
            found[str(meta["version"])] = KernelSource(package, str(meta["version"]), stamp.parent)
        except (OSError, ValueError, KeyError):
            continue
    return found


@contextlib.contextmanager
def _lock() -> Iterator[None]:
    root = schedulers_dir() / "source"
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


_PIPELINE = (
    'set -o pipefail; dpkg-deb --fsys-tarfile "$1" | tar -xO "$2" '
    '| tar -xJ -C "$3" --strip-components=1 "${@:4}"'
)


def _extract(deb: Path, release: str, dest: Path) -> None:
    """``usr/src/linux-source-X.Y.tar.xz`` from ``deb``, then :data:`SOURCE_MEMBERS` from it."""
    top = f"linux-source-{release}"
    members = [f"{top}/{m}" for m in SOURCE_MEMBERS]
    # One process group, so a timeout kills the whole pipe, not only bash.
    proc = subprocess.Popen(
        [
            "bash",
            "-c",
            _PIPELINE,
            "extract",
            str(deb),
            f"./usr/src/{top}.tar.xz",
            str(dest),
            *members,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        _, err = proc.communicate(timeout=_EXTRACT_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise SourceError(f"extracting {deb.name} took over {_EXTRACT_TIMEOUT_S:.0f} s") from exc
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    if proc.returncode != 0:
        lines = [ln for ln in err.decode(errors="replace").splitlines() if ln.strip()]
        raise SourceError(f"extracting {deb.name} failed: {(lines or ['?'])[0]}")


def _version_key(version: str) -> list[int | str]:
    # re.split with a group alternates text and digits, so positions compare like with like
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", version)]


def _fetch(
    apt: AptClient, package: str, release: str, progress: Callable[[str], None]
) -> KernelSource:
    version = apt.show(package).get("Version", "")
    if not re.fullmatch(r"[\w.+~:-]+", version):
        raise SourceError(f"{package} in {apt.suite} has no usable Version ({version!r})")
    top = schedulers_dir() / "source"
    work = Path(tempfile.mkdtemp(prefix=f".tmp-{package}-", dir=top))
    try:
        progress(f"downloading {package} {version}")
        deb = apt.download(package, work / "debs")
        progress(f"extracting the sched_ext build tree from {deb.name}")
        (work / "tree").mkdir()
        _extract(deb, release, work / "tree")
        (work / "tree" / _STAMP).write_text(
            json.dumps({"package": package, "version": version, "members": list(SOURCE_MEMBERS)})
            + "\n"
        )
        final = top / f"{package}_{version}"
        if final.exists():  # no stamp (an interrupted copy): replace it
            shutil.rmtree(final)
        os.rename(work / "tree", final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return KernelSource(package, version, final)


def ensure_source(
    kernel: KernelArtifacts,
    *,
    apt: AptClient | None = None,
    progress: Callable[[str], None] = lambda _m: None,
) -> KernelSource:
    """The cached source subset for ``kernel``'s release, downloaded on first use.

    A fetched kernel wants its own package version; when the cache already holds it, no
    network is used. A user kernel (version unknown) takes the newest cached tree of its
    release, else the suite's current one. If the suite moved on, its version is used
    (same major.minor) and the caller records the mismatch.

    :param apt: the apt client (tests pass a fake); default: ``PrivateApt("sid")``.
    :return: the tree; raises :class:`SourceError` with a one-line message.
    """
    release = release_of(kernel.version)
    package = f"linux-source-{release}"
    want = wanted_version(kernel)
    with _lock():
        have = _cached(package)
        if want in have:
            return have[want]
        if want is None and have:
            return have[max(have, key=_version_key)]
        client = apt or PrivateApt(_SUITE)
        try:
            client.update()
            return _fetch(client, package, release, progress)
        except AptError as exc:
            if have:  # offline, but an older tree of the same release will do
                return have[max(have, key=_version_key)]
            raise SourceError(f"cannot download {package}: {exc}") from exc
