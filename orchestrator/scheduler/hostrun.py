"""Run a built scheduler's ``-h`` on the host, against the kernel it was built for.

The examples' ``SCX_OPS_OPEN`` checks ``sched_ext_ops`` in the *running* kernel's BTF
(``/sys/kernel/btf/vmlinux``) before parsing options, so on a host kernel without sched_ext
even ``-h`` fails ("sched_ext_ops.dump() missing, kernel too old?"). In a private mount
namespace the target kernel's raw BTF is bind-mounted over that file first (``unshare
--mount``; ``--user --map-root-user`` when not root). scx_userland switches itself to
SCHED_EXT before option parsing and cannot print its help on such a host at all.

>>> write_raw_btf(kernel.vmlinux, Path("/tmp/btf"))
>>> run_help(Path("bin/scx_qmap"), Path("/tmp/btf")).returncode
0
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from orchestrator.scheduler.errors import SchedulerBuildError

__all__ = ("BtfError", "HelpRun", "SYSFS_BTF", "run_help", "write_raw_btf")

SYSFS_BTF = "/sys/kernel/btf/vmlinux"
_HELP_TIMEOUT_S = 20.0
_MAX_OUTPUT = 64 * 1024
_SCRIPT = 'mount --bind "$1" ' + SYSFS_BTF + ' && exec "$2" -h'


class BtfError(SchedulerBuildError):
    """The kernel's vmlinux has no usable ``.BTF`` section."""


@dataclass(frozen=True)
class HelpRun:
    """What ``-h`` did: exit status and its combined output (help goes to stderr)."""

    returncode: int
    output: str
    namespaced: bool  # False when the BTF could not be swapped in (host BTF was used)


def write_raw_btf(vmlinux: Path, dest: Path) -> None:
    """Copy the ``.BTF`` section of ``vmlinux`` to ``dest`` (the format sysfs serves)."""
    try:
        with vmlinux.open("rb") as fh:
            sec = ELFFile(fh).get_section_by_name(".BTF")
            data = sec.data() if sec is not None else b""
    except (OSError, ELFError) as exc:
        raise BtfError(f"{vmlinux}: cannot read its ELF sections ({exc})") from exc
    if len(data) < 24 or data[:2] != b"\x9f\xeb":  # BTF_MAGIC, little endian
        raise BtfError(f"{vmlinux}: no .BTF section (kernel built without DEBUG_INFO_BTF?)")
    dest.write_bytes(data)


def _namespace_prefix() -> list[str] | None:
    unshare = shutil.which("unshare")
    if unshare is None or not Path(SYSFS_BTF).exists():
        return None
    user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
    return [unshare, *user, "--mount", "--propagation", "private"]


def run_help(binary: Path, raw_btf: Path | None) -> HelpRun:
    """Run ``binary -h`` with ``raw_btf`` standing in for the host kernel's BTF.

    Falls back to a plain ``binary -h`` when namespaces are unavailable.
    """
    prefix = _namespace_prefix() if raw_btf is not None else None
    if prefix is not None:
        cmd = [*prefix, "sh", "-c", _SCRIPT, "sh", str(raw_btf), str(binary)]
    else:
        cmd = [str(binary), "-h"]
    try:
        res = subprocess.run(
            cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=_HELP_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        return HelpRun(
            -1, f"{binary.name} -h did not exit within {_HELP_TIMEOUT_S:.0f} s", prefix is not None
        )
    except OSError as exc:
        return HelpRun(-1, f"{binary.name} -h: {exc}", prefix is not None)
    out = (res.stdout + res.stderr)[:_MAX_OUTPUT].decode(errors="replace")
    return HelpRun(res.returncode, out, prefix is not None)
