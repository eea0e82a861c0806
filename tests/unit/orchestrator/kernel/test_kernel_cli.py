"""`schedlab kernel list|fetch` through click's runner, on a temporary cache."""

from click.testing import CliRunner
from test_kernel_artifacts import _cached_kernel

from orchestrator.kernel.cli import kernel_group


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
    assert res.output.strip().endswith(f"7.2.13+deb14-cloud-amd64\t{tmp_path}/kernels/7.2.13+deb14-cloud-amd64")
