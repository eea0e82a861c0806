"""Opt-in profiling of any schedlab process: set SCHEDLAB_PROFILE=DIR to get DIR/<name>-<pid>.prof."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

__all__ = ("maybe_profile",)


@contextlib.contextmanager
def maybe_profile(name: str) -> Iterator[None]:
    out_dir = os.environ.get("SCHEDLAB_PROFILE")
    if not out_dir:
        yield
        return
    import cProfile

    prof = cProfile.Profile()
    prof.enable()
    try:
        yield
    finally:
        prof.disable()
        os.makedirs(out_dir, exist_ok=True)
        prof.dump_stats(os.path.join(out_dir, f"{name}-{os.getpid()}.prof"))
