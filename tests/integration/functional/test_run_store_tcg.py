"""A real run with ``--store``: its collector forwards the run directory live over CURVE to
a ``schedlab collect`` store on loopback, and the result follows; the store's copy is the
run directory, byte for byte."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from schedlab_shared import curve
from tests.framework.remote_store import Store, config_env, free_port, make_keys
from tests.framework.schedlab_cli import default_kernel_or_skip, leftovers, run_cli


@pytest.mark.slow
def test_a_run_forwards_its_directory_to_the_store(tmp_path: Path) -> None:
    default_kernel_or_skip()
    cfg = tmp_path / "cfg"  # one host that is also the store: its own key on its allow-list
    make_keys(cfg, "store")
    (cfg / "allowed").mkdir()
    host = curve.host_name()
    shutil.copy(make_keys(cfg, host), cfg / "allowed" / f"{host}.key")
    store = Store(cfg, tmp_path / "store", free_port())
    store.start()
    try:
        run = run_cli(
            [
                "run",
                "--engine",
                "qemu",
                "--duration",
                "1",
                "--fairness",
                "1",
                "--store",
                store.addr,
            ],
            tmp_path,
            timeout=600,
            env=config_env(cfg),
        )
    finally:
        err = store.stop()
    assert run.code == 0, run.stderr[-3000:]  # fairness 1: the store is judged here, not EEVDF
    assert run.result is not None
    run_id, run_dir = run.result["run_id"], Path(run.result["run_dir"])
    assert f"run {run_id} stored" in run.stderr, run.stderr[-2000:] + err
    copy = tmp_path / "store" / host / run_id
    for name in (
        "result.json",
        "console.log",
        "kernel.log",
        "messages.jsonl",
        "monitor-monitor.jsonl",
    ):
        assert (copy / name).read_bytes() == (run_dir / name).read_bytes(), name
    assert leftovers(run_id) == []
