"""Build the kernel's example schedulers for one kernel (the default :class:`Builder`).

Recipe (FACTS §4b): ``make -C tools/sched_ext CLANG=clang-19 LLVM_STRIP=llvm-strip-19
VMLINUX_BTF=<the kernel's decompressed vmlinux> O=<work>`` over the cached source subset
(:mod:`orchestrator.scheduler.source`), with Debian's toolchain
(:mod:`orchestrator.scheduler.toolchain`). libbpf and bpftool are built along; the
binaries link libbpf statically and need libelf, libz and libc at run time. Each binary
is copied without debug sections, then asked for ``-h`` on the host
(:mod:`orchestrator.scheduler.hostrun`); its ops name comes from its ``.bpf.c``.

>>> ensure_built(kernel, builder=ExampleBuilder())
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, TextIO

from orchestrator.initramfs.elfdeps import ElfDepsError, elf_deps
from orchestrator.kernel.artifacts import KernelArtifacts
from orchestrator.scheduler.cache import Progress
from orchestrator.scheduler.errors import SchedulerBuildError
from orchestrator.scheduler.examples import EXAMPLE_NAMES
from orchestrator.scheduler.hostrun import run_help, write_raw_btf
from orchestrator.scheduler.source import KernelSource, ensure_source, wanted_version
from orchestrator.scheduler.toolchain import Toolchain, ensure_toolchain
from orchestrator.scheduler.usage import help_from_source, parse_usage

__all__ = ("ExampleBuilder", "ops_name")

_MAKE_TIMEOUT_S = 3600.0
_OPS_NAME_RE = re.compile(r"\.name\s*=\s*\"([A-Za-z0-9_.]{1,127})\"")


def ops_name(bpf_source: str) -> str | None:
    """The ``.name`` of the ``SCX_OPS_DEFINE`` in a scheduler's ``.bpf.c`` (one per file)."""
    names = set(_OPS_NAME_RE.findall(bpf_source))
    return names.pop() if len(names) == 1 else None


def _failure_line(log_path: Path) -> str:
    """The first compiler/make error of a build log, else its last line."""
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return "?"
    for ln in lines:
        if re.search(r"(error:|Error \d+|\*\*\*|No such file)", ln):
            return ln.strip()[:300]
    return next((ln.strip()[:300] for ln in reversed(lines) if ln.strip()), "make failed")


def _run_make(cmd: list[str], log: TextIO) -> int:
    log.write("$ " + " ".join(cmd) + "\n")
    log.flush()
    env = {**os.environ, "LC_ALL": "C"}
    # Own process group: a timeout or Ctrl-C takes clang and every sub-make with it.
    proc = subprocess.Popen(
        cmd,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    try:
        return proc.wait(timeout=_MAKE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        log.write(f"\nschedlab: make killed after {_MAKE_TIMEOUT_S:.0f} s\n")
        return -1
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise


def _clang_version(clang: str) -> str:
    try:
        res = subprocess.run(
            [clang, "-target", "bpf", "--version"],  # the BPF compiler (toolchain.bpf_clang)
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return (res.stdout.splitlines() or ["?"])[0]


class ExampleBuilder:
    """Builds :data:`~orchestrator.scheduler.examples.EXAMPLE_NAMES` from linux-source.

    :param names: a subset to build (default: all eight).
    :param jobs: ``make -j`` (default: the CPU count).
    """

    def __init__(self, names: tuple[str, ...] = EXAMPLE_NAMES, jobs: int | None = None) -> None:
        self.names = names
        self.jobs = jobs or os.cpu_count() or 1

    def _check_kernel(self, kernel: KernelArtifacts) -> Path:
        if kernel.config_known and not kernel.has_sched_ext:
            raise SchedulerBuildError(
                f"kernel {kernel.version} has no sched_ext "
                f"(CONFIG_SCHED_CLASS_EXT): nothing to build for it"
            )
        if kernel.vmlinux is None:
            raise SchedulerBuildError(
                f"kernel {kernel.version} has no vmlinux to take its BTF "
                f"from; put one beside its image or use a cached kernel"
            )
        return kernel.vmlinux

    def _make(
        self, tc: Toolchain, src: KernelSource, vmlinux: Path, obj: Path, log: TextIO
    ) -> Path:
        obj.mkdir(exist_ok=True)  # tools/scripts/Makefile.include refuses a missing O=
        cmd = [
            tc.make,
            "-C",
            str(src.root / "tools/sched_ext"),
            f"CLANG={tc.clang}",
            f"LLVM_STRIP={tc.llvm_strip}",
            f"VMLINUX_BTF={vmlinux}",
            f"O={obj}",
            f"-j{self.jobs}",
            *self.names,
        ]
        if _run_make(cmd, log) != 0:
            log.flush()
            raise SchedulerBuildError(_failure_line(Path(log.name)))
        return obj / "build" / "bin"

    def _install(self, tc: Toolchain, built: Path, out: Path, log: TextIO) -> None:
        (out / "bin").mkdir()
        for name in self.names:
            src, dest = built / name, out / "bin" / name
            if not src.is_file():
                raise SchedulerBuildError(f"make succeeded but produced no {name}")
            # Debug sections are 2/3 of each file and only weigh on the host->guest transfer.
            res = subprocess.run(
                [tc.llvm_strip, "--strip-debug", "-o", str(dest), str(src)],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            if res.returncode != 0:
                log.write(res.stderr)
                raise SchedulerBuildError(f"{tc.llvm_strip} {name}: {res.stderr.strip()[:200]}")
            dest.chmod(0o755)

    def _describe(
        self, name: str, binary: Path, src: KernelSource, btf: Path | None, log: TextIO
    ) -> dict[str, Any]:
        sched_dir = src.root / "tools/sched_ext"
        ops = ops_name((sched_dir / f"{name}.bpf.c").read_text(errors="replace"))
        run = run_help(binary, btf)
        log.write(f"\n$ {name} -h -> {run.returncode} (namespaced: {run.namespaced})\n{run.output}")
        text: str | None = run.output
        origin = "-h"
        if run.returncode != 0 or "Usage" not in run.output:
            text = help_from_source((sched_dir / f"{name}.c").read_text(errors="replace"), name)
            origin = "source"
        usage = parse_usage(text or "")
        try:
            needed = list(elf_deps(binary).needed)
        except ElfDepsError as exc:
            raise SchedulerBuildError(str(exc)) from exc
        return {
            "binary": f"bin/{name}",
            "ops": ops,
            "usage_from": origin,
            "usage": {
                "text": text or "",
                "summary": usage.summary,
                "synopsis": usage.synopsis,
                "options": [o.to_dict() for o in usage.options],
            },
            "needed": needed,
            "help_exit": run.returncode,
        }

    def build(
        self, kernel: KernelArtifacts, out: Path, work: Path, log: TextIO, progress: Progress
    ) -> dict[str, Any]:
        """Build into ``out``; see :class:`orchestrator.scheduler.cache.Builder`."""
        t0 = time.monotonic()
        vmlinux = self._check_kernel(kernel)
        tc = ensure_toolchain(progress=progress)
        t1 = time.monotonic()
        src = ensure_source(kernel, progress=progress)
        t2 = time.monotonic()
        progress(f"building {len(self.names)} schedulers against {kernel.version}'s BTF")
        built = self._make(tc, src, vmlinux, work / "obj", log)
        t3 = time.monotonic()
        self._install(tc, built, out, log)
        btf: Path | None = work / "btf.raw"
        try:
            write_raw_btf(vmlinux, work / "btf.raw")
        except SchedulerBuildError as exc:
            log.write(f"schedlab: {exc}; -h runs against the host's BTF\n")
            btf = None
        scheds = {n: self._describe(n, out / "bin" / n, src, btf, log) for n in self.names}
        want = wanted_version(kernel)
        return {
            "source": {
                "package": src.package,
                "version": src.version,
                "matches_kernel": want == src.version if want else None,
            },
            "toolchain": {"clang": _clang_version(tc.clang)},
            "timings_s": {
                "toolchain": round(t1 - t0, 3),
                "source": round(t2 - t1, 3),
                "make": round(t3 - t2, 3),
                "finish": round(time.monotonic() - t3, 3),
            },
            "schedulers": scheds,
        }
