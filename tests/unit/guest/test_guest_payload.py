"""guest.payload: programs with bounded output, exit codes, metrics; custom callables."""

from __future__ import annotations

import sys
import time

import pytest

from guest import payload
from guest.workreport import check_report
from tests.framework.native import native_on_path

# stress-ng 0.15 --metrics-brief, as it prints it on stderr.
STRESS_NG = """\
stress-ng: info:  [812] setting to a 2 second run per stressor
stress-ng: info:  [812] dispatching hogs: 1 cpu
stress-ng: metrc: [812] stressor       bogo ops real time  usr time  sys time   bogo ops/s     bogo ops/s
stress-ng: metrc: [812]                           (secs)    (secs)    (secs)   (real time) (usr+sys time)
stress-ng: metrc: [812] cpu                  1234      2.00      1.98      0.01       616.92         620.10
stress-ng: info:  [812] successful run completed in 2.00s
"""


def test_stress_ng_metrics_are_parsed_per_stressor() -> None:
    m = payload.extract_metrics("stress-ng", "", STRESS_NG)
    assert m == {
        "cpu": {
            "bogo_ops": 1234,
            "real_s": 2.0,
            "usr_s": 1.98,
            "sys_s": 0.01,
            "bogo_ops_per_s": 616.92,
        }
    }
    assert payload._units(m, 0) == 1234


def test_json_and_key_value_metrics() -> None:
    out = 'noise\n{"a": 1}\n{"ops": 3, "lat_us": 2.5}\ntrailing\n'
    assert payload.extract_metrics("json", out, "") == {"ops": 3, "lat_us": 2.5}
    assert payload.extract_metrics("kv", "ops: 12\nrate=3.5\nname: x\n", "") == {
        "ops": 12.0,
        "rate": 3.5,
    }
    assert payload.extract_metrics("none", out, "") == {}
    assert payload._units({}, 0) == 1 and payload._units({}, 3) == 0


def test_a_program_s_output_is_bounded_head_and_tail() -> None:
    n = 10 * payload.OUTPUT_KEEP
    prog = payload.Program([sys.executable, "-c", f"print('A' * {n}); print('END')"])
    while not prog.done:
        prog.pump(0.1)
    prog.stop()
    r = prog.result()
    assert r["exit_code"] == 0 and r["signal"] == "" and r["stdout_bytes"] == n + 5
    assert r["stdout"].startswith("A" * 100) and r["stdout"].endswith("END\n")
    assert "bytes ...]" in r["stdout"] and len(r["stdout"]) < 3 * payload.OUTPUT_KEEP


def test_stop_ends_a_program_that_ignores_sigint_and_sigterm() -> None:
    code = "import signal, time\nfor s in (signal.SIGINT, signal.SIGTERM): signal.signal(s, signal.SIG_IGN)\ntime.sleep(60)"
    prog = payload.Program([sys.executable, "-c", code])
    time.sleep(0.3)
    t0 = time.monotonic()
    prog.stop()
    assert prog.result()["signal"] == "SIGKILL" and time.monotonic() - t0 < 10


def test_a_missing_program_is_an_error_naming_it() -> None:
    with pytest.raises(OSError, match="cannot start /nonexistent/prog"):
        payload.Program(["/nonexistent/prog"])


def test_payload_env_puts_the_sent_libraries_first(monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("LD_LIBRARY_PATH", "/x")
    assert payload.payload_env()["LD_LIBRARY_PATH"] == "/run/schedlab/inputs/lib:/x"


@pytest.fixture(scope="module")
def kinds():  # noqa: ANN201
    native_on_path()
    from guest.worktypes import KINDS

    return KINDS


def test_custom_command_reports_exit_code_output_and_metrics(kinds) -> None:  # noqa: ANN001
    args = {
        "cgroup": "cg0",
        "duration_s": 5.0,
        "params": {"command": f"{sys.executable} -c \"print('ops: 7')\"", "metrics": "kv"},
    }
    r = kinds["custom"](args, lambda: False)
    check_report(r)
    extra = r["segments"][0]["extra"]
    assert r["error"] == "" and extra["exit_code"] == 0 and extra["metrics"] == {"ops": 7.0}
    assert r["work_units"] == 7 and "ops: 7" in extra["stdout"]


def test_custom_callable_is_imported_and_counts_its_units(kinds, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    (tmp_path / "my_work.py").write_text(
        "def run(ctl):\n    n = 0\n    while ctl.running():\n        ctl.unit(2)\n        n += 1\n"
        "    return {'loops': n}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    r = kinds["custom"](
        {"cgroup": "cg0", "duration_s": 0.05, "params": {"callable": "my_work:run"}}, lambda: False
    )
    check_report(r)
    seg = r["segments"][0]
    assert r["error"] == "" and seg["work_units"] == 2 * seg["extra"]["result"]["loops"] > 0


def test_a_payload_that_is_not_there_is_a_worker_error(kinds) -> None:  # noqa: ANN001
    r = kinds["payload"](
        {
            "cgroup": "cg0",
            "duration_s": 0.05,
            "params": {"name": "no-such-payload-xyz", "args": ""},
        },
        lambda: False,
    )
    check_report(r)
    assert "cannot start no-such-payload-xyz" in r["error"]


def test_stress_ng_as_a_payload_from_the_run_s_inputs(kinds, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    # The inputs tree as the guest's receiver installs it: the binary and its libraries.
    import shutil as sh

    from orchestrator.payloads import payload_files
    from tests.framework.prereq import require

    require(
        sh.which("stress-ng") is not None, "stress-ng is not installed (the launcher installs it)"
    )
    for f in payload_files("stress-ng"):
        (tmp_path / f.kind).mkdir(exist_ok=True)
        (tmp_path / f.kind / f.name).symlink_to(f.path)
    monkeypatch.setattr(payload, "INPUTS_DIR", str(tmp_path))
    args = {
        "cgroup": "cg0",
        "duration_s": 1.0,
        "params": {"name": "stress-ng", "args": "--cpu 1 --cpu-method int64 --metrics-brief"},
    }
    r = kinds["payload"](args, lambda: False)
    check_report(r)
    extra = r["segments"][0]["extra"]
    assert r["error"] == "", r["error"]
    assert extra["exit_code"] == 0 and extra["argv"].startswith(str(tmp_path / "payload/stress-ng"))
    assert "--timeout 1s" in extra["argv"]  # the worker's duration
    cpu = extra["metrics"]["cpu"]
    assert cpu["bogo_ops"] > 0 and r["work_units"] == cpu["bogo_ops"]
    assert extra["cpu_s"] > 0.3  # the child's CPU time, from wait4
