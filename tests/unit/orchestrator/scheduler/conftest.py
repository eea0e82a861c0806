"""Fixtures for scheduler tests: a temporary cache, a fake kernel, a fake builder."""

import threading
import time
from pathlib import Path

import pytest

from orchestrator.kernel.artifacts import KernelArtifacts
from orchestrator.scheduler.errors import SchedulerBuildError

QMAP_HELP = (
    "Usage: scx_qmap [-e COUNT] [-v]\n\n  -e COUNT      Trigger an error\n  -v            Verbose\n"
)


def make_kernel(
    tmp_path: Path,
    version: str = "7.2.13+deb14-cloud-amd64",
    sha: str = "ab" * 32,
    sched_ext: bool = True,
) -> KernelArtifacts:
    root = tmp_path / "kernels" / version
    root.mkdir(parents=True, exist_ok=True)
    (root / "vmlinuz").write_bytes(b"not a real kernel")
    (root / "vmlinux").write_bytes(b"\x7fELF fake")
    config = {"CONFIG_SCHED_CLASS_EXT": "y"} if sched_ext else {"CONFIG_HZ": "250"}
    return KernelArtifacts(
        version=version,
        root=root,
        vmlinuz=root / "vmlinuz",
        vmlinux=root / "vmlinux",
        config=config,
        modules_dir=None,
        system_map=None,
        meta={"vmlinuz_sha256": sha, "packages": {"linux-binary-x": "7.2.13-1"}},
    )


class FakeBuilder:
    """Writes a shell script per name; counts calls; can fail or be slow."""

    def __init__(
        self, names=("scx_simple", "scx_qmap"), fail: str | None = None, delay: float = 0.0
    ) -> None:
        self.names = names
        self.fail = fail
        self.delay = delay
        self.calls = 0
        self.lock = threading.Lock()

    def build(self, kernel, out, work, log, progress):
        with self.lock:
            self.calls += 1
        progress(f"fake build for {kernel.version}")
        (out / "bin").mkdir()
        for n in self.names:
            (out / "bin" / n).write_text(f"#!/usr/bin/python3\n# {n} for {kernel.version}\n")
            (out / "bin" / n).chmod(0o755)
        time.sleep(self.delay)
        log.write("clang: everything is fine\n")
        if self.fail:
            log.write(f"{self.fail}\n")
            raise SchedulerBuildError(self.fail)
        return {
            "source": {"package": "linux-source-7.2", "version": "7.2.13-1"},
            "timings_s": {"make": 0.0},
            "schedulers": {
                n: {
                    "binary": f"bin/{n}",
                    "ops": n.removeprefix("scx_"),
                    "usage_from": "-h",
                    "usage": {
                        "text": QMAP_HELP,
                        "summary": "",
                        "synopsis": "",
                        "options": [{"short": "-e", "long": None, "arg": "COUNT", "help": "err"}],
                    },
                    "needed": [],
                }
                for n in self.names
            },
        }


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SCHEDLAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"
