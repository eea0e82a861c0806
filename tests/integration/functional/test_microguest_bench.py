"""Tier 2: the exit-latency benchmark runs end to end (figures are printed, not judged)."""

import shutil

import pytest

from tests.framework.microguest import require_kvm
from tests.framework.prereq import missing
from vmm_proc.bench.exit_latency import CReference, python_exit_ns, run_exit_benchmark

pytestmark = pytest.mark.kvm


def test_python_loop_counts_every_exit():
    require_kvm()
    # python_exit_ns raises unless exactly this many IoOut exits arrived before HLT.
    assert python_exit_ns(500) > 0


def test_benchmark_reports_both_figures():
    require_kvm()
    if shutil.which("gcc") is None:
        missing("gcc missing: no C reference")
    r = run_exit_benchmark(exits=1000, repeats=1)
    assert r["exits"] == 1000
    assert r["python_us_per_exit"] > 0 and r["c_us_per_exit"] > 0
    assert r["ratio"] == pytest.approx(r["python_us_per_exit"] / r["c_us_per_exit"])
    assert "c_error" not in r
    print(f"exit latency: {r}")


def test_c_reference_leaves_no_temp_dir(tmp_path, monkeypatch):
    require_kvm()
    if shutil.which("gcc") is None:
        missing("gcc missing: no C reference")
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    ref = CReference()
    try:
        assert len(list(tmp_path.iterdir())) == 1
        assert ref.exit_ns(200) > 0
    finally:
        ref.close()
    assert list(tmp_path.iterdir()) == []
