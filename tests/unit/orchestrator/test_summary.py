"""The end-of-run summary names the scheduler under test and how it ended."""

from __future__ import annotations

from rich.console import Console

from orchestrator.summary import render_summary

BASE = {
    "workers": [], "monitor": {"samples": []}, "engine": "qemu", "kernel": {"version": "7.2"},
    "timings": {"vm_start_to_sys_rdy_ms": 1, "test_ms": 2, "teardown_ms": 3, "total_ms": 4},
    "verdict": "failed", "reasons": ["r"], "run_dir": "/x",
}  # fmt: skip


def _text(sched: dict) -> str:
    console = Console(width=200, record=True)
    render_summary({**BASE, "scheduler": sched}, console)
    return console.export_text()


def test_an_exit_and_the_early_stop_are_shown():
    out = _text({"name": "scx_qmap", "origin": "example", "args": ["-t", "20"], "ops": "qmap",
                 "attached": True, "attach_ms": 812.3, "stopped_early": True,
                 "exit_to_stop_ms": 640.2,
                 "exit": {"reason": "runnable task stall", "message": "spin[5] failed to run"}})  # fmt: skip
    assert "scx_qmap -t 20" in out and "812 ms" in out
    assert (
        "exited during the test: runnable task stall: spin[5] failed to run; VM stopped 640 ms later"
        in out
    )


def test_a_load_failure_and_a_clean_stop():
    out = _text({"name": "scx_qmap", "origin": "example", "attached": False,
                 "attach_status": "died", "attach_message": "libbpf: failed to load\n-- x"})  # fmt: skip
    assert "did not attach (died): libbpf: failed to load" in out
    out = _text({"name": "scx_simple", "origin": "example", "attached": True, "attach_ms": 1.0,
                 "stop": {"status": "killed", "problems": ["had to be killed"]}})  # fmt: skip
    assert "stopped: killed (had to be killed)" in out


def test_eevdf_has_no_scheduler_table():
    out = _text({"name": "eevdf", "origin": "eevdf"})
    assert "attach" not in out and "scheduler eevdf" in out


def _cpu(cpu: int, pcount: int, **extra: int) -> dict:
    return {"cpu": cpu, "nr_running": 1, "rq_clock": 2 * 10**9, "pcount": pcount, **extra}


def test_the_cpu_table_shows_sched_ext_depths_and_runs_over_the_samples():
    scx = {"scx_nr_running": 3, "local_dsq_nr": 2}
    samples = [
        {"elapsed_ms": 0, "cpus": [_cpu(0, 100, **scx), _cpu(1, 50, **scx)]},
        {"elapsed_ms": 900, "cpus": [_cpu(0, 1600, **scx), _cpu(1, 50, **scx)]},
    ]
    console = Console(width=200, record=True)
    monitor = {"samples": samples, "checks": {"status": "passed", "judged_samples": 7}}
    render_summary({**BASE, "monitor": monitor, "scheduler": {"origin": "eevdf"}}, console)
    out = console.export_text()
    head = next(line for line in out.splitlines() if "nr_running" in line)
    assert head.split() == ["cpu", "nr_running", "rq_clock", "scx", "nr", "local", "dsq", "runs"]
    rows = [line.split() for line in out.splitlines() if line.strip().startswith(("0 ", "1 "))]
    assert rows == [
        ["0", "1", "2.000", "s", "3", "2", "1,500"],
        ["1", "1", "2.000", "s", "3", "2", "0"],
    ]
    assert "2 monitor samples (7 judged)" in out


def test_the_cpu_table_leaves_out_what_the_kernel_lacks():
    samples = [{"elapsed_ms": 0, "cpus": [{"cpu": 0, "nr_running": 0, "rq_clock": 10**9}]}]
    console = Console(width=200, record=True)
    render_summary(
        {**BASE, "monitor": {"samples": samples}, "scheduler": {"origin": "eevdf"}}, console
    )
    out = console.export_text()
    assert "runs" not in out and "dsq" not in out and "1 monitor samples;" in out
