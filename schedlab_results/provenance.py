"""Where a result came from: schedlab's own commit and the host it ran on."""

from __future__ import annotations

import functools
import socket
import subprocess
from pathlib import Path

__all__ = ("host", "project_commit")

_ROOT = Path(__file__).resolve().parents[1]


@functools.cache
def project_commit(root: Path = _ROOT) -> str:
    """``git rev-parse HEAD`` of the tree (12 hex digits), ``-dirty`` if tracked files
    changed; ``unknown`` outside a git checkout (an installed wheel)."""
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}-dirty" if dirty else head


def host() -> str:
    return socket.gethostname()
