"""The remote collector on loopback: two "hosts" (forwarders with their own CURVE key pairs)
stream growing run directories into one store; the store is killed mid-stream and started
again, and still holds every byte of both, once; a key not on the allow-list is refused."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.framework.remote_store import Store, config_env, free_port, make_keys

ROOT = Path(__file__).resolve().parents[3]
HOSTS = ("hostA", "hostB")


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[dict[str, object]]:
    store_cfg = tmp_path / "store-cfg"
    store_pub = make_keys(store_cfg, "store")
    (store_cfg / "allowed").mkdir()
    cfgs = {}
    for name in (*HOSTS, "intruder"):
        cfg = tmp_path / f"{name}-cfg"
        pub = make_keys(cfg, name)
        shutil.copy(store_pub, cfg / "curve" / "store.key")  # each host was given the store's key
        if name != "intruder":
            shutil.copy(pub, store_cfg / "allowed" / f"{name}.key")
        cfgs[name] = cfg
    store = Store(store_cfg, tmp_path / "store", free_port())
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
        env=config_env(cfg),
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
