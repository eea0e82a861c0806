"""The reaper removes a SIGKILLed orchestrator's runtime directory and shm files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_a_sigkilled_owner_leaves_nothing(tmp_path: Path) -> None:
    runtime = tmp_path / "schedlab-run-x"
    runtime.mkdir()
    (runtime / "vm.msgpack").write_bytes(b"x")
    endpoints = tmp_path / "endpoints.json"
    endpoints.write_text("{}")
    shm = tmp_path / "shm-run1-node0"
    shm.write_bytes(b"ram")
    code = (
        "import os, sys, time; from pathlib import Path; from orchestrator.reaper import "
        f"start_reaper; start_reaper(Path({str(runtime)!r}), Path({str(endpoints)!r}), "
        f"{str(tmp_path / 'shm-run1-*')!r}); print('up', flush=True); time.sleep(60)"
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert owner.stdout is not None and owner.stdout.readline() == b"up\n"
    assert runtime.exists()
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (runtime.exists() or shm.exists()):
        time.sleep(0.1)
    assert not runtime.exists() and not endpoints.exists() and not shm.exists()


def test_release_after_a_clean_teardown_returns_promptly(tmp_path: Path) -> None:
    from orchestrator.reaper import start_reaper

    r = start_reaper(tmp_path / "gone", tmp_path / "e.json", str(tmp_path / "none-*"))
    t0 = time.monotonic()
    r.release()
    assert r.proc.returncode == 0 and time.monotonic() - t0 < 5
