"""Built schedulers, cached per kernel: ``schedulers_dir()/<kernel-version>/``.

A kernel's folder holds ``bin/<name>`` and ``manifest.json`` (format, kernel identity,
source package, per scheduler: binary, sha256, ops name, usage text and its options). It is
built on first use by a :class:`Builder` into a temporary folder beside it, under a lock
file, and renamed into place only when complete: a concurrent build waits and then finds
it; a failed one leaves nothing but its log (``logs/<kernel>.log``) and one line saying why.

>>> built = ensure_built(resolve_kernel(None))          # builds once, then a lookup
>>> built.hit, built.schedulers["scx_qmap"].ops
(True, 'qmap')
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

from orchestrator.kernel.artifacts import KernelArtifacts
from orchestrator.scheduler.errors import SchedulerBuildError
from orchestrator.scheduler.source import schedulers_dir
from orchestrator.scheduler.usage import Usage, UsageOption

__all__ = (
    "FORMAT",
    "MANIFEST",
    "BuildCache",
    "BuiltScheduler",
    "Builder",
    "SchedulerBuildError",
    "ensure_built",
    "kernel_identity",
    "list_built",
    "load_built",
)

MANIFEST = "manifest.json"
FORMAT = 2  # 2: BPF objects from the ziglang wheel's clang (see toolchain)
_SAFE_DIR = re.compile(r"^[\w.+~-]{1,128}$")

Progress = Callable[[str], None]


class Builder(Protocol):
    """Builds every scheduler for one kernel into ``out`` (``out/bin/<name>``).

    :return: the manifest's ``source``, ``toolchain``, ``timings`` and ``schedulers``
        (name -> ``binary`` (relative to ``out``), ``ops``, ``usage``, ``usage_from``,
        ``needed``); raises :class:`SchedulerBuildError` with a one-line reason.
    """

    def build(
        self, kernel: KernelArtifacts, out: Path, work: Path, log: TextIO, progress: Progress
    ) -> dict[str, Any]: ...


@dataclass(frozen=True)
class BuiltScheduler:
    """One cached binary and what its build learnt about it."""

    name: str
    path: Path
    kernel: str
    ops: str | None
    usage: Usage
    usage_from: str  # "-h" (ran on the host) or "source" (help_fmt of its .c file)
    sha256: str
    needed: tuple[str, ...]


@dataclass(frozen=True)
class BuildCache:
    """A kernel's cached build. ``hit`` is False when this call built it."""

    kernel: str
    root: Path
    manifest: dict[str, Any] = field(hash=False)
    schedulers: dict[str, BuiltScheduler] = field(hash=False)
    hit: bool = True
    seconds: float = 0.0  # wall time of this call


def kernel_identity(kernel: KernelArtifacts) -> str:
    """What must not change for a cached build to stay valid: the kernel's BTF source."""
    sha = kernel.meta.get("vmlinuz_sha256")
    if isinstance(sha, str) and sha:
        return f"vmlinuz-sha256:{sha}"
    if kernel.vmlinux is None:
        return "no-vmlinux"
    st = kernel.vmlinux.stat()
    return f"vmlinux:{st.st_size}:{st.st_mtime_ns}"


def _dir_name(version: str) -> str:
    if _SAFE_DIR.match(version) and not version.startswith("."):
        return version
    return "k-" + hashlib.sha256(version.encode()).hexdigest()[:16]


def _usage_from(entry: dict[str, Any]) -> Usage:
    opts = tuple(
        UsageOption(o.get("short"), o.get("long"), o.get("arg"), o.get("help", ""))
        for o in entry.get("options", ())
    )
    return Usage(entry.get("summary", ""), entry.get("synopsis", ""), opts)


def _from_manifest(root: Path, manifest: dict[str, Any], hit: bool, seconds: float) -> BuildCache:
    kernel = str(manifest["kernel"])
    scheds = {}
    for name, e in manifest["schedulers"].items():
        scheds[name] = BuiltScheduler(
            name=name,
            path=root / e["binary"],
            kernel=kernel,
            ops=e.get("ops"),
            usage=_usage_from(e.get("usage", {})),
            usage_from=e.get("usage_from", "?"),
            sha256=e.get("sha256", ""),
            needed=tuple(e.get("needed", ())),
        )
    return BuildCache(kernel, root, manifest, scheds, hit, seconds)


def _valid(root: Path, kernel: KernelArtifacts | None) -> dict[str, Any] | None:
    try:
        manifest = json.loads((root / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        return None
    if kernel is not None and (
        manifest.get("kernel") != kernel.version
        or manifest.get("kernel_id") != kernel_identity(kernel)
    ):
        return None
    scheds = manifest.get("schedulers")
    if not isinstance(scheds, dict) or not scheds:
        return None
    for e in scheds.values():
        path = root / str(e.get("binary", ""))
        if not path.is_file() or path.stat().st_size != e.get("size"):
            return None
    return manifest


def load_built(kernel: KernelArtifacts) -> BuildCache | None:
    """The valid cached build for ``kernel``, or None (no build is started)."""
    start = time.monotonic()
    root = schedulers_dir() / _dir_name(kernel.version)
    manifest = _valid(root, kernel)
    return _from_manifest(root, manifest, True, time.monotonic() - start) if manifest else None


def list_built() -> list[BuildCache]:
    """Every complete cached build, by kernel version."""
    found = []
    top = schedulers_dir()
    if top.is_dir():
        for sub in sorted(top.iterdir()):
            if sub.is_dir() and sub.name not in ("source", "logs") and not sub.name.startswith("."):
                manifest = _valid(sub, None)
                if manifest:
                    found.append(_from_manifest(sub, manifest, True, 0.0))
    return found


@contextlib.contextmanager
def _build_lock(top: Path) -> Iterator[None]:
    top.mkdir(parents=True, exist_ok=True)
    with open(top / ".build.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _finish_manifest(
    kernel: KernelArtifacts, out: Path, fields: dict[str, Any], log_path: Path
) -> dict[str, Any]:
    scheds = fields.get("schedulers")
    if not isinstance(scheds, dict) or not scheds:
        raise SchedulerBuildError("the builder produced no scheduler")
    for name, e in scheds.items():
        path = out / str(e.get("binary", ""))
        if not path.is_file():
            raise SchedulerBuildError(f"the build produced no binary for {name}")
        e["size"] = path.stat().st_size
        e["sha256"] = _sha256(path)
    return {
        "format": FORMAT,
        "kernel": kernel.version,
        "kernel_id": kernel_identity(kernel),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "log": str(log_path),
        **fields,
        "schedulers": scheds,
    }


def _build(
    kernel: KernelArtifacts, top: Path, final: Path, builder: Builder, progress: Progress
) -> dict[str, Any]:
    logs = top / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{final.name}.log"
    work = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=top))
    try:
        out = work / "out"
        out.mkdir()
        with log_path.open("w") as log:
            try:
                fields = builder.build(kernel, out, work, log, progress)
                manifest = _finish_manifest(kernel, out, fields, log_path)
            except (SchedulerBuildError, OSError) as exc:
                log.write(f"\nschedlab: build failed: {exc}\n")
                raise SchedulerBuildError(
                    f"building schedulers for kernel {kernel.version} "
                    f"failed: {exc} (log: {log_path})"
                ) from exc
        (out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        if final.exists():  # stale (other kernel build, old format): move aside, then drop
            os.rename(final, work / "stale")
        os.rename(out, final)
        return manifest
    finally:
        shutil.rmtree(work, ignore_errors=True)


def ensure_built(
    kernel: KernelArtifacts,
    *,
    builder: Builder | None = None,
    force: bool = False,
    progress: Progress = lambda _m: None,
) -> BuildCache:
    """The cached build for ``kernel``, built now if missing, stale or ``force``.

    :param builder: default :class:`orchestrator.scheduler.build.ExampleBuilder`.
    :return: the cache entry (``hit`` tells whether a build ran); raises
        :class:`SchedulerBuildError` with a one-line message.
    """
    start = time.monotonic()
    if not force:
        cached = load_built(kernel)
        if cached is not None:
            return cached
    top = schedulers_dir()
    final = top / _dir_name(kernel.version)
    with _build_lock(top):
        manifest = None if force else _valid(final, kernel)
        hit = manifest is not None  # another process built it while we waited
        if manifest is None:
            if builder is None:
                from orchestrator.scheduler.build import ExampleBuilder

                builder = ExampleBuilder()
            manifest = _build(kernel, top, final, builder, progress)
    return _from_manifest(final, manifest, hit, time.monotonic() - start)
