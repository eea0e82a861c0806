"""`schedlab kernel list|fetch` through click's runner, on a temporary cache."""

from click.testing import CliRunner
from test_kernel_artifacts import _cached_kernel

from orchestrator.kernel import fetch
from orchestrator.kernel.cli import kernel_group
from orchestrator.private_apt import AptError


def test_list_empty(tmp_path, monkeypatch):
    monkeypatch.setenv("SCHEDLAB_CACHE", str(tmp_path))
    res = CliRunner().invoke(kernel_group, ["list"])
    assert res.exit_code == 0 and "schedlab kernel fetch" in res.output


def test_list_and_cached_fetch(tmp_path, monkeypatch):
    monkeypatch.setenv("SCHEDLAB_CACHE", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "200")
    _cached_kernel(tmp_path, "7.2.13+deb14-cloud-amd64", config="CONFIG_HZ=250\n")
    res = CliRunner().invoke(kernel_group, ["list"])
    assert res.exit_code == 0, res.output
    row = next(ln for ln in res.output.splitlines() if "7.2.13" in ln)
    assert "no" in row and "250" in row and str(tmp_path) in row
    res = CliRunner().invoke(kernel_group, ["fetch"])  # cached: no apt involved
    assert res.exit_code == 0
    assert res.output.strip().endswith(
        f"7.2.13+deb14-cloud-amd64\t{tmp_path}/kernels/7.2.13+deb14-cloud-amd64"
    )


class _UnreachableApt:
    """A private apt whose mirror cannot be reached."""

    suite, mirror = "sid", "http://deb.invalid/debian"

    def __init__(self, suite):
        assert suite == "sid"

    def update(self, *, force=False):
        raise AptError("apt-get update failed: Could not resolve 'deb.invalid'")


def test_fetch_failure_exits_2_with_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("SCHEDLAB_CACHE", str(tmp_path))  # empty cache: fetch must download
    monkeypatch.setattr(fetch, "PrivateApt", _UnreachableApt)
    res = CliRunner().invoke(kernel_group, ["fetch"])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.startswith("schedlab:")]
    assert lines == [
        "schedlab: kernel download failed: apt-get update failed: Could not resolve 'deb.invalid'"
    ], res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)


def test_fetch_failure_on_disk_exits_2(tmp_path, monkeypatch):
    monkeypatch.setenv("SCHEDLAB_CACHE", str(tmp_path))

    def no_space(**_kw):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("orchestrator.kernel.cli.fetch_default", no_space)
    res = CliRunner().invoke(kernel_group, ["fetch"])
    assert (
        res.exit_code == 2
        and "schedlab: kernel fetch failed: [Errno 28] No space left" in res.output
    )
