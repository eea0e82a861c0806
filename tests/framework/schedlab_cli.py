"""Run the real ``schedlab`` CLI as a user would, and check that nothing is left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ("CliRun", "run_cli", "leftovers", "default_kernel_or_skip")

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class CliRun:
    code: int
    stdout: str
    stderr: str
    result: dict[str, Any] | None


def run_cli(
    args: list[str], tmp: Path, timeout: float = 600, env: dict[str, str] | None = None
) -> CliRun:
    json_path = tmp / "result.json"
    argv = [sys.executable, "-m", "orchestrator.cli", *args]
    if args and args[0] == "run" and "--json" not in args:
        argv += ["--json", str(json_path)]
    proc = subprocess.run(
        argv,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {}), "COLUMNS": "200"},
    )
    result = json.loads(json_path.read_text()) if json_path.exists() else None
    return CliRun(proc.returncode, proc.stdout, proc.stderr, result)


def leftovers(run_id: str) -> list[str]:
    """Processes and /dev/shm files that still carry ``run_id``."""
    found = [f"/dev/shm/{n}" for n in os.listdir("/dev/shm") if run_id in n]
    found += [f"/tmp/{n}" for n in os.listdir("/tmp") if n.startswith("schedlab-qemu-")]
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmd = (
                Path(f"/proc/{pid}/cmdline")
                .read_bytes()
                .replace(b"\0", b" ")
                .decode(errors="replace")
            )
        except OSError:
            continue
        if run_id in cmd:
            found.append(f"pid {pid}: {cmd[:120]}")
    return found


def default_kernel_or_skip():  # noqa: ANN201 - KernelArtifacts
    """The cached default kernel (fetching it under CI), or a skip with the reason locally."""
    from orchestrator.kernel.artifacts import KernelError
    from orchestrator.kernel.resolve import resolve_kernel

    from .prereq import require, under_ci

    try:
        return resolve_kernel(None, fetch_if_missing=under_ci())
    except KernelError as exc:
        require(False, f"no default kernel: {exc}")
