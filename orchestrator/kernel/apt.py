"""A private apt state for downloading Debian packages without touching the system's apt.

The sources list, package lists, package cache, dpkg status and preferences all live under
one directory (default ``tools_dir()/apt-<suite>``); the Debian mirror host is the one
the machine already uses (``/etc/apt/sources.list.d/debian.sources`` or
``/etc/apt/sources.list``), with ``http://deb.debian.org/debian`` as the fallback.

>>> apt = PrivateApt("sid")
>>> apt.update()                       # no network if the lists are already there
>>> apt.resolve_depends("linux-image-cloud-amd64")
['linux-image-7.2.13+deb14-cloud-amd64']
>>> apt.download("linux-binary-7.2.13+deb14-cloud-amd64", Path("/tmp/dl"))
PosixPath('/tmp/dl/linux-binary-7.2.13+deb14-cloud-amd64_7.2.13-1_amd64.deb')
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from schedlab_shared.cache import tools_dir

__all__ = ("AptError", "PrivateApt", "system_mirror")

_DEFAULT_MIRROR = "http://deb.debian.org/debian"
_DEB822 = Path("/etc/apt/sources.list.d/debian.sources")
_ONE_LINE = Path("/etc/apt/sources.list")
_UPDATE_TIMEOUT = 600
_DOWNLOAD_TIMEOUT = 1800


class AptError(RuntimeError):
    """An apt command failed; the message carries its last error line."""


def _mirror_from_deb822(text: str) -> str | None:
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if ":" in line and not line.startswith(("#", " ", "\t")):
                key, _, value = line.partition(":")
                fields[key.strip().lower()] = value.strip()
        suites = fields.get("suites", "")
        if "deb" in fields.get("types", "").split() and "security" not in suites:
            uris = fields.get("uris", "").split()
            if uris:
                return uris[0]
    return None


def _mirror_from_one_line(text: str) -> str | None:
    for line in text.splitlines():
        words = re.sub(r"\[[^]]*\]", "", line).split()
        if len(words) >= 3 and words[0] == "deb" and "security" not in words[2]:
            return words[1]
    return None


def system_mirror() -> str:
    """The Debian mirror URL the machine's own apt configuration uses.

    :return: e.g. ``http://deb.debian.org/debian``; the public default if none is found.
    """
    for path, parse in ((_DEB822, _mirror_from_deb822), (_ONE_LINE, _mirror_from_one_line)):
        try:
            found = parse(path.read_text())
        except OSError:
            continue
        if found:
            return found.rstrip("/")
    return _DEFAULT_MIRROR


def _parse_fields(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    key = ""
    for line in text.splitlines():
        if line[:1] in (" ", "\t") and key:
            fields[key] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def _depends_names(field: str) -> list[str]:
    # "a (= 1), b | c, d:any" -> ["a", "b", "d"]: first alternative, no version, no arch.
    names = []
    for clause in field.split(","):
        first = clause.split("|")[0].strip()
        name = re.split(r"[\s(:]", first, maxsplit=1)[0]
        if name:
            names.append(name)
    return names


class PrivateApt:
    """apt-get/apt-cache confined to a private directory for one suite.

    :param suite: Debian suite, e.g. ``sid`` or ``bookworm-backports``.
    :param root: state directory; defaults to ``tools_dir()/apt-<suite>``.
    :param mirror: mirror URL; defaults to :func:`system_mirror`.
    :param components: archive components.
    """

    def __init__(self, suite: str, root: Path | None = None, *, mirror: str | None = None,
                 components: str = "main") -> None:
        self.suite = suite
        self.root = root if root is not None else tools_dir() / f"apt-{suite}"
        self.mirror = mirror or system_mirror()
        self.components = components

    @property
    def lists_dir(self) -> Path:
        return self.root / "lists"

    def _prepare(self) -> None:
        for sub in ("lists/partial", "cache/archives/partial", "etc"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        source = f"deb {self.mirror} {self.suite} {self.components}\n"
        src = self.root / "etc/sources.list"
        if not src.exists() or src.read_text() != source:
            src.write_text(source)
        (self.root / "status").touch()

    def _options(self) -> list[str]:
        opts = {
            "Dir::Etc::sourcelist": str(self.root / "etc/sources.list"),
            "Dir::Etc::sourceparts": "-",
            "Dir::Etc::preferences": str(self.root / "etc/preferences"),
            "Dir::Etc::preferencesparts": "-",
            "Dir::State::Lists": str(self.lists_dir),
            "Dir::State::status": str(self.root / "status"),
            "Dir::Cache": str(self.root / "cache"),
            "Debug::NoLocking": "1",
            "Acquire::Languages": "none",
        }
        if os.geteuid() == 0:
            opts["APT::Sandbox::User"] = "root"  # the private dir is not readable by _apt
        return [arg for k, v in opts.items() for arg in ("-o", f"{k}={v}")]

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self._prepare()
        with open(self.root / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # apt's own locks are off (Debug::NoLocking)
            yield

    def _run(self, tool: str, args: list[str], *, cwd: Path | None = None,
             timeout: float = _UPDATE_TIMEOUT) -> str:
        exe = shutil.which(tool)
        if exe is None:
            raise AptError(f"`{tool}` not found: schedlab downloads kernels with Debian's apt")
        cmd = [exe, "-q", *self._options(), *args]
        try:
            out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                                 check=False)
        except subprocess.TimeoutExpired as exc:
            raise AptError(f"{tool} {args[0]} timed out after {timeout:.0f} s") from exc
        if out.returncode != 0 or re.search(r"^(E|Err):", out.stdout + out.stderr, re.M):
            errs = [ln for ln in (out.stderr + out.stdout).splitlines() if ln.startswith(("E:", "Err"))]
            last = errs[-1] if errs else (out.stderr.strip().splitlines() or ["?"])[-1]
            raise AptError(f"{tool} {' '.join(args)} failed ({self.mirror} {self.suite}): {last}")
        return out.stdout

    def has_lists(self) -> bool:
        """True when package lists for the suite were downloaded before."""
        return self.lists_dir.is_dir() and any(self.lists_dir.glob("*_Packages*"))

    def lists_age(self) -> float | None:
        """Seconds since the lists were last updated (None when never)."""
        stamps = [p.stat().st_mtime for p in self.lists_dir.glob("*_Packages*")]
        return time.time() - max(stamps) if stamps else None

    def update(self, *, force: bool = False) -> bool:
        """Download the suite's package lists unless already present.

        :param force: refresh even when lists exist.
        :return: True when the network was used.
        """
        with self._locked():
            if self.has_lists() and not force:
                return False
            self._run("apt-get", ["update"])
            if not self.has_lists():
                raise AptError(f"apt-get update gave no package list for {self.suite}")
            return True

    def show(self, pkg: str) -> dict[str, str]:
        """The candidate version's control fields (``Version``, ``Depends``, ...)."""
        with self._locked():
            text = self._run("apt-cache", ["show", "--no-all-versions", pkg])
        fields = _parse_fields(text)
        if "Package" not in fields:
            raise AptError(f"package {pkg} not found in {self.suite}")
        return fields

    def resolve_depends(self, pkg: str) -> list[str]:
        """Names of ``pkg``'s direct Depends (first alternative of each clause)."""
        return _depends_names(self.show(pkg).get("Depends", ""))

    def download(self, pkg: str, dest: Path) -> Path:
        """Download the candidate ``.deb`` of ``pkg`` into ``dest``.

        :return: the path of the downloaded file.
        """
        dest.mkdir(parents=True, exist_ok=True)
        before = set(dest.glob(f"{pkg}_*.deb"))
        with self._locked():
            self._run("apt-get", ["download", pkg], cwd=dest, timeout=_DOWNLOAD_TIMEOUT)
        debs = sorted(set(dest.glob(f"{pkg}_*.deb")) - before) or sorted(dest.glob(f"{pkg}_*.deb"))
        if not debs:
            raise AptError(f"apt-get download {pkg} produced no .deb in {dest}")
        return debs[-1]
