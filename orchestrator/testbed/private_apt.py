"""Package downloads through apt with a private sources list and state directory.

The machine's own apt configuration is never modified: the sources list, the package lists
and the binary cache all live under a directory we own; the system's mirror host is only
*read* from ``/etc/apt/sources.list.d/*.sources`` (deb822) or ``/etc/apt/sources.list``.

>>> apt = PrivateApt(Path("state"), f"deb {debian_mirror()} bookworm-backports main")
>>> apt.update()
>>> apt.download("linux-image-6.12.95+deb12-amd64-unsigned", Path("dl"))
"""

from __future__ import annotations

import functools
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ("AptError", "PrivateApt", "compare_versions", "debian_mirror")

_SOURCES_D = Path("/etc/apt/sources.list.d")
_SOURCES_LIST = Path("/etc/apt/sources.list")
_TIMEOUT_S = 600.0


class AptError(RuntimeError):
    """apt or dpkg failed; the message carries the command and the tail of its output."""


def _deb822_mirrors(text: str) -> list[str]:
    """URIs of deb822 stanzas serving a plain Debian suite (not -security)."""
    found: list[str] = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            m = re.match(r"^([A-Za-z-]+):\s*(.*)$", line)
            if m:
                fields[m.group(1).lower()] = m.group(2).strip()
        suites = fields.get("suites", "").split()
        if "deb" not in fields.get("types", "").split() or not suites:
            continue
        if all(s.endswith("-security") for s in suites):
            continue
        found.extend(fields.get("uris", "").split())
    return found


def _one_line_mirrors(text: str) -> list[str]:
    found = []
    for line in text.splitlines():
        parts = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
        if len(parts) >= 3 and parts[0] == "deb" and not parts[2].endswith("-security"):
            found.append(parts[1])
    return found


def debian_mirror(sources_d: Path = _SOURCES_D, sources_list: Path = _SOURCES_LIST) -> str:
    """The Debian mirror URL this machine's apt already uses.

    :return: e.g. ``"http://deb.debian.org/debian"`` (no trailing slash).
    :raises AptError: no Debian (non-security) source is configured.
    """
    candidates: list[str] = []
    for path in sorted(sources_d.glob("*.sources")) if sources_d.is_dir() else []:
        candidates += _deb822_mirrors(path.read_text(errors="replace"))
    lists = (
        [sources_list, *sorted(sources_d.glob("*.list"))] if sources_d.is_dir() else [sources_list]
    )
    for path in lists:
        if path.is_file():
            candidates += _one_line_mirrors(path.read_text(errors="replace"))
    for uri in candidates:
        if uri.startswith(("http://", "https://")):
            return uri.rstrip("/")
    raise AptError(f"no Debian mirror found in {sources_d} or {sources_list}")


def _run(argv: list[str], cwd: Path | None = None) -> str:
    try:
        proc = subprocess.run(
            argv, cwd=cwd, capture_output=True, text=True, timeout=_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise AptError(f"{argv[0]} failed: {exc}") from exc
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise AptError(
            f"{' '.join(argv[:1] + argv[-2:])} exited {proc.returncode}: {' | '.join(tail)}"
        )
    return proc.stdout


def compare_versions(a: str, b: str) -> int:
    """Debian version ordering (``dpkg --compare-versions``): -1, 0 or 1."""
    for op, result in (("lt", -1), ("eq", 0)):
        if subprocess.run(["dpkg", "--compare-versions", a, op, b], check=False).returncode == 0:
            return result
    return 1


def _compare_pairs(x: tuple[str, str], y: tuple[str, str]) -> int:
    return compare_versions(x[0], y[0])


@dataclass(frozen=True)
class PrivateApt:
    """apt-get/apt-cache bound to one private state directory and one sources line.

    :param state: directory holding ``sources.list``, ``lists/`` and ``cache/``.
    :param source_line: a one-line apt source, e.g. ``deb URL bookworm-backports main``.
    """

    state: Path
    source_line: str

    def _options(self) -> list[str]:
        return [
            "-o", f"Dir::Etc::sourcelist={self.state / 'sources.list'}",
            "-o", "Dir::Etc::sourceparts=-",
            "-o", f"Dir::State::Lists={self.state / 'lists'}",
            "-o", f"Dir::Cache={self.state / 'cache'}",
            "-o", "Debug::NoLocking=1",
        ]  # fmt: skip

    def update(self) -> None:
        """Write the sources list and fetch the package index."""
        for sub in ("lists/partial", "cache/archives/partial"):
            (self.state / sub).mkdir(parents=True, exist_ok=True)
        (self.state / "sources.list").write_text(self.source_line + "\n")
        _run(["apt-get", *self._options(), "-q", "update"])

    def package_names(self, prefix: str) -> list[str]:
        """Real and virtual package names starting with ``prefix``."""
        return sorted(_run(["apt-cache", *self._options(), "pkgnames", prefix]).split())

    def candidate_version(self, package: str) -> str | None:
        """The version apt would download, or None for a purely virtual name."""
        out = _run(["apt-cache", *self._options(), "show", "--no-all-versions", package])
        m = re.search(r"^Version:\s*(\S+)", out, re.M)
        return m.group(1) if m else None

    def newest(self, pattern: re.Pattern[str], prefix: str) -> tuple[str, str]:
        """The (package, version) with the highest version among names matching ``pattern``.

        :raises AptError: no real package matches.
        """
        found: list[tuple[str, str]] = []
        for name in self.package_names(prefix):
            if pattern.fullmatch(name) and (ver := self.candidate_version(name)):
                found.append((ver, name))
        if not found:
            raise AptError(f"no package matching {pattern.pattern} in {self.source_line!r}")
        ver, name = max(found, key=functools.cmp_to_key(_compare_pairs))
        return name, ver

    def download(self, package: str, dest: Path) -> Path:
        """Download one .deb into ``dest``; returns its path."""
        dest.mkdir(parents=True, exist_ok=True)
        before = set(dest.glob("*.deb"))
        _run(["apt-get", *self._options(), "-q", "download", package], cwd=dest)
        new = sorted(set(dest.glob("*.deb")) - before) or sorted(dest.glob(f"{package}_*.deb"))
        if not new:
            raise AptError(f"apt-get download {package} produced no .deb in {dest}")
        return new[0]
