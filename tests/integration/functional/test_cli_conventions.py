"""The CLI as a new user meets it: help everywhere, --version, completions, plain progress.

Everything here runs the real CLI as a subprocess and boots nothing, except the one
``slow`` test that reads the progress lines of a real run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import click
import pytest

from tests.framework.schedlab_cli import ROOT, default_kernel_or_skip, run_cli

NO_RUN = "/nonexistent/schedlab-run"  # attach's RUN_DIR: no run, no directory even


def _command_paths() -> list[list[str]]:
    """Every command and subcommand, as the argv that reaches it (RUN_DIR for attach)."""
    from orchestrator.cli import cli

    ctx = click.Context(cli)

    def walk(cmd: click.Command, path: list[str]) -> list[list[str]]:
        out = [path]
        if isinstance(cmd, click.Group):
            args = [NO_RUN for p in cmd.params if isinstance(p, click.Argument)]
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                assert sub is not None, name
                out += walk(sub, [*path, *args, name])
        return out

    return walk(cli, [])


def _cli(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


@pytest.mark.parametrize("path", _command_paths(), ids=lambda p: " ".join(p) or "schedlab")
def test_every_help_works_with_no_run(path: list[str]) -> None:
    for flag in ("--help", "-h"):
        res = _cli([*path, flag])
        assert res.returncode == 0, res.stderr
        assert res.stdout.startswith("Usage: schedlab"), res.stdout
        assert "``" not in res.stdout and ":param" not in res.stdout  # no raw reST


def test_top_level_help_lists_test_and_completions() -> None:
    out = _cli(["--help"]).stdout
    commands = out.split("Commands:", 1)[1]
    for name in ("run", "test", "completions", "attach", "bench", "kernel"):
        assert re.search(rf"^\s+{name}\s", commands, re.M), name


def test_test_command_has_its_own_help() -> None:
    res = _cli(["test", "--help"])
    assert res.returncode == 0
    assert "Usage: schedlab test [OPTIONS] [PYTEST_ARGS]" in res.stdout
    assert "--quick" in res.stdout and "pytest" in res.stdout
    assert "pytest's own -h/--help after" in res.stdout


def test_version_comes_from_package_metadata() -> None:
    res = _cli(["--version"])
    assert res.returncode == 0
    assert res.stdout.strip() == f"schedlab {version('schedlab')}"


@pytest.mark.parametrize(
    ("shell", "syntax"),
    [
        ("bash", "complete -o nosort -F _schedlab_completion schedlab"),
        ("zsh", "#compdef schedlab"),
        ("fish", "complete --no-files --command schedlab"),
    ],
)
def test_completions_print_the_shells_script(shell: str, syntax: str) -> None:
    res = _cli(["completions", shell])
    assert res.returncode == 0, res.stderr
    assert syntax in res.stdout
    assert "_SCHEDLAB_COMPLETE" in res.stdout


def test_completions_reject_an_unknown_shell() -> None:
    res = _cli(["completions", "tcsh"])
    assert res.returncode == 2
    assert res.stderr.startswith("schedlab: ") and "'tcsh' is not one of" in res.stderr


def test_completion_offers_the_engine_choices() -> None:
    # What the bash script asks for when the user presses TAB after "--engine ".
    env = {
        "_SCHEDLAB_COMPLETE": "bash_complete",
        "COMP_WORDS": "schedlab run --engine ",
        "COMP_CWORD": "3",
    }
    res = _cli([], env=env)
    assert res.returncode == 0, res.stderr
    assert set(res.stdout.split()) == {"plain,auto", "plain,kvm", "plain,qemu"}


def test_completion_offers_subcommands() -> None:
    env = {"_SCHEDLAB_COMPLETE": "bash_complete", "COMP_WORDS": "schedlab be", "COMP_CWORD": "1"}
    assert _cli([], env=env).stdout.split() == ["plain,bench"]


def test_enumerated_options_show_their_choices() -> None:
    out = _cli(["run", "--help"]).stdout
    assert "--engine [auto|kvm|qemu]" in out
    assert "--progress [auto|tty|plain|json]" in out
    assert (
        "--stream [console|diag|hvc0|bulk|shell]"
        in _cli(["attach", NO_RUN, "console", "--help"]).stdout
    )


def test_attach_without_a_run_is_one_error_line() -> None:
    res = _cli(["attach", NO_RUN, "status"])
    assert res.returncode == 2
    assert res.stderr.count("schedlab:") == 1 and "endpoints.json" in res.stderr
    assert "Traceback" not in res.stderr


def test_progress_is_plain_lines_when_not_a_tty(tmp_path: Path) -> None:
    # Pipes, not a terminal: auto means timestamped lines, each printed when it happens.
    run = run_cli(
        ["run", "--engine", "qemu", "--kernel", "/nonexistent/vmlinuz"], tmp_path, timeout=120
    )
    assert run.code == 2
    assert re.search(
        r"^\d\d:\d\d:\d\d\.\d{3} \+\s*[\d.]+s kernel: resolving /nonexistent/vmlinuz$",
        run.stderr,
        re.M,
    ), run.stderr
    assert "\x1b[" not in run.stderr  # no spinner, no cursor control


def test_progress_json_lines_end_with_the_outcome(tmp_path: Path) -> None:
    run = run_cli(
        ["run", "--engine", "qemu", "--kernel", "/nonexistent/vmlinuz", "--progress", "json"],
        tmp_path,
        timeout=120,
    )
    assert run.code == 2
    events = [json.loads(line) for line in run.stdout.splitlines()]
    assert [e["event"] for e in events] == ["progress", "done"]
    assert events[0]["phase"] == "kernel" and events[0]["elapsed_s"] >= 0
    assert events[-1]["exit_code"] == 2 and events[-1]["verdict"] == "error"
    assert "/nonexistent/vmlinuz" in events[-1]["reason"]


@pytest.mark.slow
def test_a_real_run_reports_each_phase_as_a_line(tmp_path: Path) -> None:
    default_kernel_or_skip()
    run = run_cli(["run", "--engine", "qemu", "--duration", "1"], tmp_path, timeout=600)
    assert run.code == 0, run.stderr
    phases = re.findall(r"^\d\d:\d\d:\d\d\.\d{3} \+\s*[\d.]+s (\w+): ", run.stderr, re.M)
    for phase in ("kernel", "initramfs", "start", "boot", "test", "teardown"):
        assert phase in phases, (phase, run.stderr)
    assert len(phases) == len(set(phases))  # each state said once, not once per poll
