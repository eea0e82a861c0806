"""The monitor's judged fields in result.json: checks, events, violations, watchdog."""

import json
from pathlib import Path

from orchestrator.result import RunOutcome, build_result
from verdicts.thresholds import MonitorThresholds

GOOD = {"passed": True, "reason": "ok", "workers": []}


def _outcome(tmp: Path, **kw) -> RunOutcome:  # noqa: ANN003
    o = RunOutcome(
        engine="qemu",
        engine_reason="r",
        kernel={"version": "7.2"},
        topology={"cpus": 2, "spec": "1,1,2,1"},
        run_dir=tmp,
        guest_result=GOOD,
        guest_exit_code=0,
        vm_exit_reason="guest-exit",
    )
    for k, v in kw.items():
        setattr(o, k, v)
    return o


def _samples(n: int, *, scx: bool, heavy_from: int = 10**9, watchdog: dict | None = None):
    out = []
    for i in range(n):
        cpus = [
            {
                "cpu": c,
                "nr_running": 9 if c == 0 and i >= heavy_from else 1,
                "rq_clock": 1000 + i * 100,
                "local_dsq_nr": 0,
                "run_delay": 7 * i,
                "curr_pid": 1,
                "curr_comm": "x",
            }
            for c in range(2)
        ]
        s = {"elapsed_ms": 100.0 * i, "cpus": cpus, "monitor": "monitor"}
        if scx:
            s["scx"] = {"ops": "qmap", "events": {"SCX_EV_DISPATCH_KEEP_LAST": 2 * i}}
        if watchdog is not None and i == 5:
            s["watchdog"] = watchdog
        out.append(s)
    return out


def _write(tmp: Path, samples: list[dict], extra: str = "") -> None:
    (tmp / "monitor-monitor.jsonl").write_text(
        "".join(json.dumps(s) + "\n" for s in samples) + extra
    )


def test_eevdf_run_shows_the_new_fields_and_applies_no_thresholds(tmp_path: Path) -> None:
    _write(tmp_path, _samples(40, scx=False), extra='{"elapsed_ms": 1, "cpus": "bad"}\n')
    r = build_result(_outcome(tmp_path))
    assert r["verdict"] == "passed", r["reasons"]
    mon = r["monitor"]
    assert mon["checks"]["status"] == "not_applied" and mon["violations"] == []
    assert mon["samples"][3]["cpus"][1] == {
        "cpu": 1,
        "nr_running": 1,
        "rq_clock": 1300,
        "local_dsq_nr": 0,
        "run_delay": 21,
    }
    assert len(mon["samples"]) == 40 and "watchdog" not in mon  # the bad line is skipped


def test_sustained_imbalance_fails_the_run_with_evidence(tmp_path: Path) -> None:
    _write(tmp_path, _samples(50, scx=True, heavy_from=30))
    r = build_result(_outcome(tmp_path))
    assert r["verdict"] == "failed" and any("imbalance" in x for x in r["reasons"])
    (v,) = r["monitor"]["violations"]
    assert v["check"] == "imbalance" and v["at_ms"] == 3000.0 and v["around"]
    assert r["monitor"]["events"]["SCX_EV_DISPATCH_KEEP_LAST"] == {"total": 98, "rate": 20.0}
    looser = build_result(_outcome(tmp_path, thresholds=MonitorThresholds(max_imbalance_ratio=10)))
    assert (
        looser["verdict"] == "passed"
        and looser["monitor"]["checks"]["thresholds"]["max_imbalance_ratio"] == 10
    )


def test_watchdog_observation_is_reported(tmp_path: Path) -> None:
    obs = {
        "requested_s": 1.0,
        "requested": 250,
        "hz": 250,
        "target": "scx_sched.watchdog_timeout",
        "previous": 1250,
        "read_back": 250,
        "read_back_s": 1.0,
        "at_ms": 500.0,
    }
    _write(tmp_path, _samples(30, scx=True, watchdog=obs))
    r = build_result(_outcome(tmp_path, watchdog_timeout_s=1.0))
    assert r["monitor"]["watchdog"] == obs
    _write(tmp_path, _samples(30, scx=False))
    r = build_result(_outcome(tmp_path, watchdog_timeout_s=1.0))
    assert "not applied" in r["monitor"]["watchdog"]["error"]


def test_values_no_kernel_holds_make_the_run_an_error(tmp_path: Path) -> None:
    samples = _samples(30, scx=True)
    for s in samples:
        s["cpus"][0]["local_dsq_nr"] = 99_999
    _write(tmp_path, samples)
    r = build_result(_outcome(tmp_path))
    assert r["verdict"] == "error" and "vmlinux" in r["reasons"][0]


def test_monitor_bpf_is_the_last_listing_and_checked_on_read(tmp_path: Path) -> None:
    import pytest

    from orchestrator.result_schema import ResultError, validate_result

    samples = _samples(30, scx=True)
    prog = {"id": 1, "name": "qmap_enqueue", "type": "STRUCT_OPS", "insns": 9, "verified_insns": 40}
    bss = {"id": 3, "name": "scx_qmap.bss", "type": "ARRAY", "values": {"nr_enqueued": 5}}
    samples[0]["bpf"] = {"at_ms": 0.0, "stats_enabled": False, "progs": [prog], "maps": []}
    samples[20]["bpf"] = {"at_ms": 2000.0, "stats_enabled": False, "progs": [prog], "maps": [bss]}
    _write(tmp_path, samples)
    r = build_result(_outcome(tmp_path))
    assert r["monitor"]["bpf"]["at_ms"] == 2000.0
    assert r["monitor"]["bpf"]["maps"][0]["values"] == {"nr_enqueued": 5}
    r["monitor"]["bpf"]["progs"][0]["verified_insns"] = "many"
    with pytest.raises(ResultError, match=r"result.monitor.bpf.progs\[\].verified_insns: str"):
        validate_result(r)


def test_no_listing_no_monitor_bpf(tmp_path: Path) -> None:
    _write(tmp_path, _samples(30, scx=False))
    assert "bpf" not in build_result(_outcome(tmp_path))["monitor"]
