"""Test hook: SIGKILL this process the Nth time it reaches a named point.

``SCHEDLAB_COLLECTOR_CRASH=save.tmp_half:3`` kills the collector inside its third
checkpoint save, half-way through writing the new checkpoint. The restart tests use it to
land a kill exactly where a torn state could be written; unset, a point costs one compare.
Points: ``chunk`` (a chunk's raw bytes appended, its frames not decoded), ``frame`` (a
frame's data written, its message line not), ``save.flushed``, ``save.tmp_half``,
``save.tmp_written``, ``save.replaced``.
"""

from __future__ import annotations

import os
import signal

__all__ = ("ENV", "POINTS", "crashpoint")

ENV = "SCHEDLAB_COLLECTOR_CRASH"
POINTS = ("chunk", "frame", "save.flushed", "save.tmp_half", "save.tmp_written", "save.replaced")


def _parse(value: str) -> tuple[str, int]:
    point, _, n = value.rpartition(":")
    if point not in POINTS or not n.isdigit() or int(n) < 1:
        raise SystemExit(f"{ENV}={value!r}: want POINT:N with POINT one of {', '.join(POINTS)}")
    return point, int(n)


_point, _left = _parse(os.environ[ENV]) if os.environ.get(ENV) else ("", 0)


def crashpoint(name: str) -> None:
    """Die by SIGKILL if ``name`` is the configured point, reached for the Nth time."""
    global _left
    if name == _point:
        _left -= 1
        if _left == 0:
            os.kill(os.getpid(), signal.SIGKILL)
