"""Progress reporters: a line per state change, JSON lines, and how auto decides."""

from __future__ import annotations

import io
import json
import re

from rich.console import Console

from orchestrator.progress import (
    JsonReporter,
    LineReporter,
    SpinnerReporter,
    make_reporter,
    resolve_mode,
)


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def test_auto_is_tty_only_when_both_streams_are_terminals() -> None:
    assert resolve_mode("auto", _Stream(True), _Stream(True)) == "tty"
    assert resolve_mode("auto", _Stream(False), _Stream(True)) == "plain"
    assert resolve_mode("auto", _Stream(True), _Stream(False)) == "plain"
    assert resolve_mode("json", _Stream(True), _Stream(True)) == "json"


def test_plain_lines_are_timestamped_and_said_once() -> None:
    out = _Stream(False)
    rep = LineReporter(out)
    for _ in range(3):  # the session reports its state on every poll
        rep("boot", "booting the guest")
    rep("test", "guest ready")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3} \+\s*\d+\.\ds boot: booting the guest", lines[0])
    assert lines[1].endswith("test: guest ready")


def test_json_lines_then_done() -> None:
    out = _Stream(False)
    rep = JsonReporter(out)
    rep("boot", "booting")
    rep("boot", "booting")
    rep.done(verdict="passed", exit_code=0)
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["event"] for e in events] == ["progress", "done"]
    assert events[0]["phase"] == "boot" and events[0]["detail"] == "booting"
    assert events[1]["verdict"] == "passed" and events[1]["exit_code"] == 0
    assert all(isinstance(e["time"], float) and e["elapsed_s"] >= 0 for e in events)


def test_make_reporter_follows_the_mode() -> None:
    console = Console(file=_Stream(False))
    assert isinstance(make_reporter("plain", console), LineReporter)
    assert isinstance(make_reporter("json", console), JsonReporter)
    with make_reporter("tty", console) as spinner:
        assert isinstance(spinner, SpinnerReporter)
        spinner("boot", "booting")
    spinner.close()  # idempotent
