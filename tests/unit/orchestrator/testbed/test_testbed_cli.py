"""cli: exit status mapping of ``schedlab testbed`` (the run itself is faked here)."""

from pathlib import Path

from click.testing import CliRunner

from orchestrator.testbed import cli
from orchestrator.testbed.run import TestbedError, TestbedResult


def _invoke(monkeypatch, behaviour, args):
    calls = []

    def fake_run(cmd, **kw):
        calls.append((cmd, kw))
        return behaviour()

    monkeypatch.setattr(cli, "run_in_testbed", fake_run)
    result = CliRunner().invoke(cli.testbed, args)
    return result, calls


def test_exit_code_is_cmds(monkeypatch):
    res, calls = _invoke(
        monkeypatch,
        lambda: TestbedResult(7, 9.0, 7.5, 5.0, None),
        ["--timeout", "60", "--mem", "2048", "--cpus", "1", "--", "sh", "-c", "exit 7", "--x"],
    )
    assert res.exit_code == 7
    cmd, kw = calls[0]
    assert cmd == ["sh", "-c", "exit 7", "--x"]
    assert kw["timeout"] == 60.0 and kw["mem_mib"] == 2048 and kw["cpus"] == 1


def test_options_after_cmd_belong_to_cmd(monkeypatch):
    res, calls = _invoke(monkeypatch, lambda: TestbedResult(0, 1, 1, 1, None), ["ls", "--timeout"])
    assert res.exit_code == 0
    assert calls[0][0] == ["ls", "--timeout"]


def test_infrastructure_failure_is_exit_2_with_one_line(monkeypatch):
    def boom():
        raise TestbedError("L1 did not boot (qemu exited 1)", console_log=Path("/c/log"))

    res, _ = _invoke(monkeypatch, boom, ["--", "true"])
    assert res.exit_code == cli.EXIT_INFRA == 2
    lines = res.output.strip().splitlines()
    assert lines == ["schedlab testbed: L1 did not boot (qemu exited 1) (L1 console log: /c/log)"]


def test_timeout_says_so(monkeypatch):
    def slow():
        raise TestbedError("timed out after 5 s (CMD running)", timed_out=True)

    res, _ = _invoke(monkeypatch, slow, ["--timeout", "5", "--", "sleep", "100"])
    assert res.exit_code == 2
    assert "timed out after 5 s" in res.output


def test_missing_command_is_a_usage_error(monkeypatch):
    res, calls = _invoke(monkeypatch, lambda: None, [])
    assert res.exit_code == 2 and not calls
