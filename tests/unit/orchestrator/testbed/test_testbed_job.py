"""job: the command script L1 runs, the environment it gets, the shares it mounts."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.testbed import job
from orchestrator.testbed.job import (
    JobError,
    JobSpec,
    Share,
    default_shares,
    project_root,
    render_command_script,
    render_mounts,
    select_env,
    write_job,
)

_HARD_ARGS = ["a b", "it's", '"dq"', "$HOME", "`id`", "*", "line1\nline2", "", "-n", "x=y"]


def _run_script(tmp_path, spec):
    script = tmp_path / "cmd.sh"
    script.write_text(render_command_script(spec))
    # L1 starts it exactly like this: empty environment, /bin/sh.
    return subprocess.run(["env", "-i", "/bin/sh", str(script)], capture_output=True, check=False)


def test_script_passes_argv_env_and_cwd_exactly(tmp_path):
    workdir = tmp_path / "dir with 'quote'"
    workdir.mkdir()
    printer = (
        "import os, sys, json; print(json.dumps([sys.argv[1:], os.getcwd(),"
        " {k: v for k, v in os.environ.items() if k.startswith('T_') or k in ('PATH', 'HOME')}]))"
    )
    env = {"PATH": os.environ["PATH"], "HOME": "/h o", "T_X": "v'1 $x\n2"}
    spec = JobSpec((sys.executable, "-c", printer, *_HARD_ARGS), workdir, env, ())
    proc = _run_script(tmp_path, spec)
    assert proc.returncode == 0, proc.stderr
    argv, cwd, got_env = json.loads(proc.stdout)
    assert argv == _HARD_ARGS
    assert cwd == str(workdir)
    assert got_env == env


def test_script_exit_status_and_missing_command(tmp_path):
    ok = JobSpec(("sh", "-c", "exit 42"), tmp_path, {"PATH": "/usr/bin:/bin"}, ())
    assert _run_script(tmp_path, ok).returncode == 42
    missing = JobSpec(("no-such-command-xyz",), tmp_path, {"PATH": "/usr/bin:/bin"}, ())
    assert _run_script(tmp_path, missing).returncode == 127


def test_script_reports_a_missing_cwd(tmp_path):
    spec = JobSpec(("true",), tmp_path / "gone", {"PATH": "/usr/bin:/bin"}, ())
    proc = _run_script(tmp_path, spec)
    assert proc.returncode == 127
    assert b"cannot enter" in proc.stderr


def test_select_env_filters_and_extends():
    host = {
        "PATH": "/p", "HOME": "/h", "CI": "1", "SCHEDLAB_X": "1", "PYTHONPATH": "/pp",
        "SECRET_TOKEN": "s", "SSH_AUTH_SOCK": "/s", "LD_PRELOAD": "x",
    }  # fmt: skip
    env = select_env(host, {"EXTRA": "e", "PATH": "/override"})
    assert env == {
        "PATH": "/override", "HOME": "/h", "CI": "1", "SCHEDLAB_X": "1", "PYTHONPATH": "/pp",
        "EXTRA": "e",
    }  # fmt: skip


@pytest.mark.parametrize("bad", ["A B", "1X", "A=B", ""])
def test_select_env_rejects_bad_names(bad):
    with pytest.raises(JobError):
        select_env({}, {bad: "v"})


def test_for_command_rejects_hidden_cwd_and_empty_argv(tmp_path):
    with pytest.raises(JobError, match="hidden"):
        JobSpec.for_command(["true"], shares=(), cwd=Path("/tmp"))
    with pytest.raises(JobError, match="no command"):
        JobSpec.for_command([], shares=(), cwd=tmp_path)


def test_default_shares_orders_parents_first(tmp_path, monkeypatch):
    monkeypatch.setattr(job, "HIDDEN_PREFIXES", (Path("/proc"),))  # tmp_path is under /tmp
    cache = tmp_path / "proj" / "cache"
    cache.mkdir(parents=True)
    monkeypatch.setenv("SCHEDLAB_CACHE", str(cache))
    shares = default_shares(tmp_path / "proj", cwd=tmp_path)
    assert [s.path for s in shares] == [(tmp_path / "proj").resolve(), cache.resolve()]
    assert [s.tag for s in shares] == ["share0", "share1"]
    monkeypatch.setenv("SCHEDLAB_CACHE", str(tmp_path / "proj"))
    assert [s.path for s in default_shares(tmp_path / "proj", cwd=tmp_path)] == [
        (tmp_path / "proj").resolve()
    ]


def test_default_shares_reject_paths_l1_hides(monkeypatch):
    monkeypatch.setenv("SCHEDLAB_CACHE", "/tmp")
    with pytest.raises(JobError, match="hides"):
        default_shares(Path("/"), cwd=Path("/"))


def test_project_root_is_git_top_or_cwd(tmp_path):
    top = Path(__file__).resolve().parents[4]
    assert project_root(Path(__file__).parent) == top
    assert project_root(tmp_path) == tmp_path


def test_write_job_files(tmp_path):
    shares = (Share("share0", Path("/work/p q")), Share("share1", Path("/c")))
    spec = JobSpec(("true",), Path("/"), {"PATH": "/bin"}, shares)
    write_job(spec, tmp_path / "job")
    assert (tmp_path / "job" / "mounts").read_text() == "share0\t/work/p q\nshare1\t/c\n"
    assert (tmp_path / "job" / "cmd.sh").read_text() == render_command_script(spec)
    assert render_mounts(()) == ""
