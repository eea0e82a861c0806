"""orchestrator.payloads: a payload's binary and libraries as the run's inputs."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from orchestrator import payloads
from orchestrator.payloads import PayloadError, payload_files
from tests.framework.prereq import require


def test_stress_ng_travels_with_its_libraries() -> None:
    require(
        shutil.which("stress-ng") is not None,
        "stress-ng is not installed (the launcher installs it)",
    )
    files = payload_files("stress-ng")
    assert (files[0].kind, files[0].name, files[0].mode) == ("payload", "stress-ng", 0o755)
    libs = {f.name for f in files[1:]}
    assert all(f.kind == "lib" for f in files[1:]) and "libc.so.6" in libs
    assert "ld-linux-x86-64.so.2" not in libs  # the image's own loader runs it
    assert files[0].guest_path == "/run/schedlab/inputs/payload/stress-ng"


def test_any_host_binary_can_be_a_payload() -> None:
    files = payload_files("python", Path(sys.executable).resolve())
    assert files[0].name == "python" and any(f.name.startswith("libpython") for f in files[1:])


def test_an_unknown_or_missing_payload_is_one_line(monkeypatch) -> None:  # noqa: ANN001
    with pytest.raises(PayloadError, match="unknown; known: stress-ng"):
        payload_files("nope")
    monkeypatch.setattr(payloads.shutil, "which", lambda _cmd: None)
    monkeypatch.setattr(payloads, "_apt_install", lambda _pkg: None)
    with pytest.raises(PayloadError, match="apt-get install -y --no-install-recommends stress-ng"):
        payload_files("stress-ng")


def test_a_non_elf_is_refused(tmp_path: Path) -> None:
    script = tmp_path / "run.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    with pytest.raises(PayloadError, match="payload script"):
        payload_files("script", script)
