"""The remote collector on loopback: two "hosts" (forwarders with their own CURVE key pairs)
stream growing run directories into one store; the store is killed mid-stream and started
again, and still holds every byte of both, once; a key not on the allow-list is refused."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from schedlab_shared import curve

ROOT = Path(__file__).resolve().parents[3]
HOSTS = ("hostA", "hostB")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(cfg: Path) -> dict[str, str]:
    return {**os.environ, curve.CONFIG_ENV: str(cfg)}


def _keys(cfg: Path, name: str) -> Path:
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
            env=_env(self.cfg),
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


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[dict[str, object]]:
    store_cfg = tmp_path / "store-cfg"
    store_pub = _keys(store_cfg, "store")
    (store_cfg / "allowed").mkdir()
    cfgs = {}
    for name in (*HOSTS, "intruder"):
        cfg = tmp_path / f"{name}-cfg"
        pub = _keys(cfg, name)
        shutil.copy(store_pub, cfg / "curve" / "store.key")  # each host was given the store's key
        if name != "intruder":
            shutil.copy(pub, store_cfg / "allowed" / f"{name}.key")
        cfgs[name] = cfg
    store = Store(store_cfg, tmp_path / "store", _free_port())
    store.start()
    yield {"store": store, "cfgs": cfgs, "tmp": tmp_path}
    store.stop()


def _forwarder(
    cfg: Path, name: str, run_dir: Path, addr: str, *extra: str
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "collector_proc.forward", "--run-dir", str(run_dir)]
        + ["--store", addr, "--key-name", name, *extra],
        cwd=ROOT,
        env=_env(cfg),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _write_stream(run_dir: Path, stop: threading.Event, seed: int) -> None:
    """A run's logs growing as a collector writes them: console text and binary frames."""
    n = 0
    with open(run_dir / "console.log", "ab") as con, open(run_dir / "bulk.raw", "ab") as bulk:
        while not stop.is_set():
            con.write(f"[{seed}] line {n} {'x' * (n % 97)}\n".encode())
            bulk.write(os.urandom(4096 + n % 5000))
            con.flush()
            bulk.flush()
            n += 1
            time.sleep(0.002)


def test_two_hosts_one_store_a_restart_loses_nothing_and_a_wrong_key_is_refused(
    setup: dict[str, object],
) -> None:
    store: Store = setup["store"]  # type: ignore[assignment]
    cfgs: dict[str, Path] = setup["cfgs"]  # type: ignore[assignment]
    tmp: Path = setup["tmp"]  # type: ignore[assignment]
    runs = {h: tmp / h / f"20261202-0000{i}0-run{i}" for i, h in enumerate(HOSTS)}
    stop = threading.Event()
    writers = []
    for i, (_h, run) in enumerate(runs.items()):
        run.mkdir(parents=True)
        (run / "collector-state.json").write_text("{}")  # rewritten in place: not forwarded
        writers.append(threading.Thread(target=_write_stream, args=(run, stop, i)))
    for w in writers:
        w.start()
    fwds = {
        h: _forwarder(cfgs[h], h, run, store.addr, "--follow", "--timeout", "60")
        for h, run in runs.items()
    }

    time.sleep(2.0)
    stored_before = sum(p.stat().st_size for p in store.root.rglob("bulk.raw"))
    store.kill()  # mid-stream
    time.sleep(1.5)  # the hosts keep writing while the store is away
    store.start()
    time.sleep(2.0)
    stop.set()
    for w in writers:
        w.join()
    for f in fwds.values():
        f.send_signal(signal.SIGTERM)  # finish: flush what is left, then exit
    for h, f in fwds.items():
        _, err = f.communicate(timeout=90)
        assert f.returncode == 0, (h, err[-2000:])

    assert stored_before > 0  # the kill did land mid-stream
    assert sorted(p.name for p in store.root.iterdir()) == sorted(HOSTS)  # by key, not by claim
    for h, run in runs.items():
        copy = store.root / h / run.name
        for name in ("console.log", "bulk.raw"):
            src, dst = (run / name).read_bytes(), (copy / name).read_bytes()
            assert len(dst) == len(src) and dst == src, (h, name, len(src), len(dst))
        assert not (copy / "collector-state.json").exists()
    assert (
        (store.root / "hostA" / runs["hostA"].name / "console.log").read_bytes().startswith(b"[0]")
    )

    intruder_run = tmp / "intruder" / "run-x"
    intruder_run.mkdir(parents=True)
    (intruder_run / "console.log").write_text("let me in\n")
    bad = _forwarder(cfgs["intruder"], "intruder", intruder_run, store.addr, "--timeout", "5")
    _, err = bad.communicate(timeout=30)
    assert bad.returncode == 2
    assert (
        err.strip()
        .splitlines()[-1]
        .endswith("refused this host's CURVE key (not on its allow-list)")
    )
    assert sorted(p.name for p in store.root.iterdir()) == sorted(HOSTS)
    assert "refused a CURVE key not on the allow-list" in store.stop()
