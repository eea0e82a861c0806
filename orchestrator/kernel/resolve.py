"""How ``--kernel`` resolves: a path, a cached version, or the default kernel (fetched if none).

>>> k = resolve_kernel(None)                 # newest cached default kernel (fetched if none)
>>> resolve_kernel("/boot/vmlinuz-6.1.0-18-amd64").version
'6.1.0-18-amd64'
>>> resolve_kernel("7.2.13+deb14-cloud-amd64").root
PosixPath('/root/.cache/schedlab/kernels/7.2.13+deb14-cloud-amd64')
"""

from __future__ import annotations

import re
from collections.abc import Callable

from orchestrator.kernel.artifacts import (
    FETCH_HINT,
    KernelArtifacts,
    KernelError,
    list_cached,
    load_cached,
    user_kernel,
)
from orchestrator.kernel.fetch import fetch_default
from schedlab_shared.cache import kernels_dir

__all__ = ("resolve_kernel",)

_VERSION_RE = re.compile(r"^\d+\.\d+[\w.+~-]*$")


def resolve_kernel(
    spec: str | None,
    fetch_if_missing: bool = True,
    progress: Callable[[str, str], None] | None = None,
) -> KernelArtifacts:
    """Turn a ``--kernel`` value into artifacts.

    :param spec: None for the newest cached default kernel; a path to a vmlinuz/bzImage or an
        ELF vmlinux; or a version string of a cached kernel.
    :param fetch_if_missing: with ``spec=None`` and an empty cache, fetch the default kernel.
    :param progress: passed to :func:`fetch_default`.
    :return: the artifacts; raises :class:`KernelError` with a one-line message otherwise.
    """
    if spec is None:
        cached = [k for k in list_cached() if k.meta.get("source") == "debian-sid"] or list_cached()
        if cached:
            return cached[-1]
        if not fetch_if_missing:
            raise KernelError(f"no kernel in {kernels_dir()}; {FETCH_HINT}")
        return fetch_default(progress=progress)
    if "/" in spec or spec.startswith(("~", ".")) or not _VERSION_RE.match(spec):
        return user_kernel(spec)
    root = kernels_dir() / spec
    if not (root / "meta.json").is_file():
        have = ", ".join(k.version for k in list_cached()) or "none"
        raise KernelError(
            f"--kernel {spec}: no such cached kernel (cached: {have}); "
            f"{FETCH_HINT} or pass a vmlinuz path"
        )
    return load_cached(root)
