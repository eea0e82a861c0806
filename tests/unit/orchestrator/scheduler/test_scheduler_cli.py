"""`schedlab scheduler build|list` through click's runner, with a fake builder and kernel."""

import functools
import json

import pytest
from click.testing import CliRunner
from conftest import FakeBuilder, make_kernel

from orchestrator.cli import cli
from orchestrator.scheduler import cli as sched_cli
from orchestrator.scheduler.cache import ensure_built


@pytest.fixture()
def fake(cache, tmp_path, monkeypatch):
    kernel = make_kernel(tmp_path)
    builder = FakeBuilder()
    monkeypatch.setattr(sched_cli, "resolve_kernel", lambda spec, progress=None: kernel)
    monkeypatch.setattr(sched_cli, "ensure_built", functools.partial(ensure_built, builder=builder))
    monkeypatch.setenv("COLUMNS", "200")
    return kernel, builder


def test_build_then_cached_with_timing(fake):
    kernel, builder = fake
    res = CliRunner().invoke(cli, ["scheduler", "build", "--timing"])
    assert res.exit_code == 0, res.output
    assert f"built 2 schedulers for {kernel.version}" in res.output
    assert "timing: cold build " in res.output and "(make 0.00 s)" in res.output
    res = CliRunner().invoke(cli, ["scheduler", "build", "--timing"])
    assert res.exit_code == 0 and "cached 2 schedulers" in res.output
    assert "timing: cache hit " in res.output and " ms;" in res.output and builder.calls == 1


def test_list_json_and_table(fake):
    kernel, _ = fake
    res = CliRunner().invoke(cli, ["scheduler", "list"])
    assert res.exit_code == 0 and "no scheduler built yet" in res.output
    CliRunner().invoke(cli, ["scheduler", "build"])
    res = CliRunner().invoke(cli, ["scheduler", "list", "--json"])
    assert res.exit_code == 0, res.output
    rows = {r["name"]: r for r in json.loads(res.output)}
    assert set(rows) == {"scx_simple", "scx_qmap"}
    q = rows["scx_qmap"]
    assert q["ops"] == "qmap" and q["kernel"] == kernel.version and q["usage_from"] == "-h"
    assert q["options"] == [{"short": "-e", "long": None, "arg": "COUNT", "help": "err"}]
    assert {"name": "stall-user", "args": ["-t", "20"], "requires": []} in q["flags"]
    assert q["watchdog_timeout_s"] == 5.0
    res = CliRunner().invoke(cli, ["scheduler", "list"])
    row = next(ln for ln in res.output.splitlines() if "scx_qmap" in ln)
    assert "qmap" in row and kernel.version in row and "-e COUNT" in row


def test_failed_build_is_one_line_exit_2(cache, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")  # narrower than the message: it must not be wrapped
    kernel = make_kernel(tmp_path)
    monkeypatch.setattr(sched_cli, "resolve_kernel", lambda spec, progress=None: kernel)
    monkeypatch.setattr(
        sched_cli,
        "ensure_built",
        functools.partial(ensure_built, builder=FakeBuilder(fail="scx_simple.c:3: error: nope")),
    )
    res = CliRunner().invoke(cli, ["scheduler", "build"])
    assert res.exit_code == 2
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert lines[0] == f"fake build for {kernel.version}"  # progress, then the one error line
    assert len(lines) == 2 and lines[1].startswith("schedlab: building schedulers for kernel")
    assert "scx_simple.c:3: error: nope" in lines[1] and lines[1].endswith(".log)")
    assert "Traceback" not in res.output


def test_unknown_kernel_is_exit_2(cache):
    res = CliRunner().invoke(cli, ["scheduler", "build", "--kernel", "9.9.9-nope"])
    assert res.exit_code == 2 and "no such cached kernel" in res.output
