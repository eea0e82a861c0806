"""Where a run's processes listen, and the ``endpoints.json`` that lets others attach live.

By default everything is a unix socket (``ipc://``) in the run's private runtime directory.
With ``listen=HOST`` the VMM's channels are TCP on HOST, so a collector or monitor on
another host can follow the VM.
"""

from __future__ import annotations

import json
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path

from schedlab_shared.run_layout import ENDPOINTS

__all__ = ("Endpoints", "AttachError", "load_endpoints")


class AttachError(Exception):
    pass


def _free_tcp_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class Endpoints:
    run_id: str
    vmm_ctl: str
    vmm_pub: str
    collector_ctl: str
    collector_pub: str
    monitors: list[tuple[str, str]] = field(default_factory=list)
    vmlinux: str = ""
    system_map: str = ""

    @classmethod
    def allocate(cls, run_id: str, rt: Path, monitors: int, listen: str | None = None) -> Endpoints:
        def ipc(name: str) -> str:
            return f"ipc://{rt / name}"

        def vm(name: str) -> str:
            return f"tcp://{listen}:{_free_tcp_port(listen)}" if listen else ipc(name)

        return cls(
            run_id,
            vm("vmm-ctl"),
            vm("vmm-pub"),
            ipc("col-ctl"),
            ipc("col-pub"),
            [(ipc(f"mon{i}-ctl"), ipc(f"mon{i}-pub")) for i in range(monitors)],
        )

    def write(self, run_dir: Path) -> None:
        (run_dir / ENDPOINTS).write_text(json.dumps(asdict(self), indent=2))


def load_endpoints(run_dir: Path) -> Endpoints:
    path = run_dir / ENDPOINTS
    try:
        d = json.loads(path.read_text())
        d["monitors"] = [tuple(m) for m in d.get("monitors", [])]
        return Endpoints(**d)
    except FileNotFoundError:
        raise AttachError(f"{run_dir}: no {ENDPOINTS}; is this a schedlab run directory?") from None
    except (ValueError, TypeError) as exc:
        raise AttachError(f"{path}: unreadable ({exc})") from None
