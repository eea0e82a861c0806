"""A ``schedlab collect`` store for tests: CURVE keys in throwaway config directories, the
store started as a user starts it, on a fixed loopback port so it can be killed and come
back at the same address."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from schedlab_shared import curve

__all__ = ("Store", "config_env", "free_port", "make_keys")

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config_env(cfg: Path) -> dict[str, str]:
    return {**os.environ, curve.CONFIG_ENV: str(cfg)}


def make_keys(cfg: Path, name: str) -> Path:
    old = os.environ.get(curve.CONFIG_ENV)
    os.environ[curve.CONFIG_ENV] = str(cfg)
    try:
        return curve.key_pair(name).path
    finally:
        if old is None:
            del os.environ[curve.CONFIG_ENV]
        else:
            os.environ[curve.CONFIG_ENV] = old


class Store:
    """``schedlab collect`` as a user starts it, on a fixed port so it can come back."""

    def __init__(self, cfg: Path, root: Path, port: int) -> None:
        self.cfg, self.root, self.addr = cfg, root, f"tcp://127.0.0.1:{port}"
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator.cli", "collect", "--listen", self.addr]
            + ["--store", str(self.root)],
            cwd=ROOT,
            env=config_env(self.cfg),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        banner = self.proc.stdout.readline()  # printed once bound: the store is up
        assert "storing into" in banner, banner + self.proc.stderr.read()  # type: ignore[union-attr]

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()  # no goodbye: whatever it acknowledged must already be on disk
        self.proc.wait(10)

    def stop(self) -> str:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=15)
        return err
