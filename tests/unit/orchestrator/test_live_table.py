"""``schedlab attach RUN_DIR top``: the live table, rendered and fed from a monitor's PUB."""

import threading
import time
from pathlib import Path

import zmq
from rich.console import Console

from orchestrator.live_table import follow, render
from schedlab_shared.bus import monitor as monitor_proto
from schedlab_shared.bus import topics
from schedlab_shared.bus.client import Publisher
from tests.framework.fake_vmm import FakeVmm


def _sample(ms: float, fallback: int, scx: bool = True) -> dict:
    s = {
        "elapsed_ms": ms,
        "monitor": "monitor",
        "cpus": [
            {
                "cpu": c,
                "nr_running": 2 + c,
                "rq_clock": int(ms * 1e6),
                "scx_nr_running": 1 + c,
                "local_dsq_nr": 3 * c,
                "curr_pid": 7,
                "curr_comm": "spin",
            }
            for c in range(2)
        ],
    }
    if scx:
        s["scx"] = {
            "ops": "qmap",
            "events": {"SCX_EV_SELECT_CPU_FALLBACK": fallback},
            "dsqs": [{"id": 0, "nr": 4}],
            "watchdog_timeout": 250,
        }
    return s


def _text(group) -> str:  # noqa: ANN001
    con = Console(record=True, width=120)
    con.print(group)
    return con.export_text()


def test_render_shows_per_cpu_columns_and_event_rates():
    text = _text(render(_sample(2000, 250), _sample(1500, 100)))
    assert "qmap" in text and "0x0:4" in text and "SELECT_CPU_FALLBACK" in text
    assert "300" in text  # (250 - 100) / 0.5 s
    row1 = next(ln for ln in text.splitlines() if ln.strip().startswith("1 "))
    assert row1.split()[:5] == ["1", "3", "2", "3", "+500,000,000"]
    assert "no sched_ext scheduler" in _text(render(_sample(0, 0, scx=False)))


def test_follow_draws_samples_until_the_vm_exits(tmp_path: Path):
    vm = FakeVmm("tt", f"ipc://{tmp_path}/vctl", f"ipc://{tmp_path}/vpub")
    ctx = zmq.Context()
    pub = Publisher(ctx, f"ipc://{tmp_path}/mpub")

    def feed() -> None:
        for i in range(15):
            time.sleep(0.1)
            pub.publish(topics.monitor_sample("tt"), monitor_proto.Sample(**_sample(100 * i, i)))
        vm.exit()

    t = threading.Thread(target=feed)
    t.start()
    try:
        shown = follow("tt", f"ipc://{tmp_path}/vctl", f"ipc://{tmp_path}/mpub", max_s=20)
    finally:
        t.join()
        pub.close()
        ctx.term()
        vm.close()
    assert shown >= 5  # the first ones may go before the subscription joins
