"""Per-process settings of the plugin (from pytest's command line); stdlib only, so that
loading the plugin stays cheap in test runs that have no schedlab test."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ("Session",)


@dataclass
class Session:
    """Per-process settings of the plugin (from the command line)."""

    out: Path
    sidecars: Path | None
    engine: str = "auto"
    slots_cpus: int | None = None
    slots_mem_mib: int | None = None
    kernel: str | None = None

    def engine_name(self) -> str:
        """The engine ``auto`` resolves to on this host (probed once; cached by the CLI)."""
        if self.engine != "auto":
            return self.engine
        from orchestrator.engine_choice import choose_engine

        return choose_engine("auto").engine
