"""A short slice of the collector fuzzer runs clean, reaches every rejection, and can fail."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from collector_proc import fuzz
from collector_proc.ingest import Ingest
from guest import schema


def _fuzz_dirs() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("schedlab-fuzz-*")}


def test_a_short_slice_has_no_crash_and_reaches_every_rejection() -> None:
    before = _fuzz_dirs()
    r = fuzz.run_fuzz(4000, seed=11, restart_every=300, epoch=1500)
    assert r.clean, r.failures
    assert (r.crashes, r.hangs, r.internal_errors) == (0, 0, 0)
    assert r.inputs == 4000 and r.restarts > 5 and r.epochs == 2 and r.frames > 100
    for kind in (*schema.KINDS, "bad_payload", "unknown_type", "bad_crc", "oversize"):
        assert r.rejected[kind] > 0, kind  # the generator reaches each reason
    assert all(n > 0 for n in r.kinds.values())
    assert _fuzz_dirs() == before  # its run directories are gone


def test_a_collector_bug_is_reported_as_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self, offset, type_byte, err):  # noqa: ANN001, ANN202
        raise RuntimeError("bug (test)")

    monkeypatch.setattr(Ingest, "_on_reject", broken)
    r = fuzz.run_fuzz(300, seed=1)
    assert r.crashes > 0 and not r.clean
    assert "RuntimeError: bug (test)" in r.failures[0] and "input=" in r.failures[0]


def test_a_slow_input_is_reported_as_a_hang(monkeypatch: pytest.MonkeyPatch) -> None:
    real = Ingest._render
    slow = []

    def render(self, frame):  # noqa: ANN001, ANN202
        if not slow:
            slow.append(frame)
            time.sleep(2)  # interrupted by the fuzzer's alarm
        return real(self, frame)

    monkeypatch.setattr(Ingest, "_render", render)
    r = fuzz.run_fuzz(300, seed=1, hang_s=0.2)
    assert r.hangs == 1 and not r.clean and r.failures[0].startswith("hang")


def test_the_command_prints_a_json_report() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "collector_proc.fuzz", "--inputs", "500", "--seed", "3", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    fig = json.loads(out.stdout)
    assert fig["inputs"] == 500 and fig["inputs_per_s"] > 0 and fig["crashes"] == 0
    assert fig["rss_end_mib"] > 0 and fig["rss_peak_mib"] >= fig["rss_end_mib"] - 1
