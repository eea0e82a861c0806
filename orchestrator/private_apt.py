"""A private apt state for downloading Debian packages without touching the system's apt.

The sources list, package lists, package cache, dpkg status and preferences all live under
one directory (default ``tools_dir()/apt-<suite>``); the Debian mirror host is the one
the machine already uses (only *read* from ``/etc/apt/sources.list.d/*.sources``,
``*.list`` or ``/etc/apt/sources.list``), with ``http://deb.debian.org/debian`` as the
fallback. Both the default kernel's fetch and the testbed's L1 kernel use it.

>>> apt = PrivateApt("sid")
>>> apt.update()                       # no network if the lists are already there
>>> apt.resolve_depends("linux-image-cloud-amd64")
['linux-image-7.2.13+deb14-cloud-amd64']
>>> apt.download("linux-binary-7.2.13+deb14-cloud-amd64", Path("/tmp/dl"))
PosixPath('/tmp/dl/linux-binary-7.2.13+deb14-cloud-amd64_7.2.13-1_amd64.deb')
>>> PrivateApt("bookworm-backports").newest(re.compile("linux-image-6[.]12[.][0-9]+-amd64"),
...                                        "linux-image-6.12.")
('linux-image-6.12.95-amd64', '6.12.95-1~bpo12+1')
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from schedlab_shared.cache import tools_dir

__all__ = ("AptError", "PrivateApt", "compare_versions", "system_mirror")

_DEFAULT_MIRROR = "http://deb.debian.org/debian"
_SOURCES_D = Path("/etc/apt/sources.list.d")
_SOURCES_LIST = Path("/etc/apt/sources.list")
_UPDATE_TIMEOUT = 600
_DOWNLOAD_TIMEOUT = 1800


class AptError(RuntimeError):
    """An apt command failed; the message carries its last error line."""


def _deb822_mirrors(text: str) -> list[str]:
    """URIs of deb822 stanzas serving a plain Debian suite (not only -security)."""
    found: list[str] = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if ":" in line and not line.startswith(("#", " ", "\t")):
                key, _, value = line.partition(":")
                fields[key.strip().lower()] = value.strip()
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
        words = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
        if len(words) >= 3 and words[0] == "deb" and not words[2].endswith("-security"):
            found.append(words[1])
    return found


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def system_mirror(sources_d: Path = _SOURCES_D, sources_list: Path = _SOURCES_LIST) -> str:
    """The Debian mirror URL the machine's own apt configuration uses.

    :return: e.g. ``http://deb.debian.org/debian`` (no trailing slash); the public default
        if no plain http(s) Debian source is configured.
    """
    parts = sorted(sources_d.glob("*.sources")) if sources_d.is_dir() else []
    lists = sorted(sources_d.glob("*.list")) if sources_d.is_dir() else []
    candidates = [uri for path in parts for uri in _deb822_mirrors(_read(path))]
    candidates += [uri for path in (sources_list, *lists) for uri in _one_line_mirrors(_read(path))]
    for uri in candidates:
        if uri.startswith(("http://", "https://")):
            return uri.rstrip("/")
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


def compare_versions(a: str, b: str) -> int:
    """Debian version ordering (``dpkg --compare-versions``): -1, 0 or 1."""
    for op, result in (("lt", -1), ("eq", 0)):
        if subprocess.run(["dpkg", "--compare-versions", a, op, b], check=False).returncode == 0:
            return result
    return 1


def _compare_first(x: tuple[str, str], y: tuple[str, str]) -> int:
    return compare_versions(x[0], y[0])


class PrivateApt:
    """apt-get/apt-cache confined to a private directory for one suite.

    :param suite: Debian suite, e.g. ``sid`` or ``bookworm-backports``.
    :param root: state directory; defaults to ``tools_dir()/apt-<suite>``.
    :param mirror: mirror URL; defaults to :func:`system_mirror`.
    :param components: archive components.
    """

    def __init__(
        self,
        suite: str,
        root: Path | None = None,
        *,
        mirror: str | None = None,
        components: str = "main",
    ) -> None:
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

    def _run(
        self,
        tool: str,
        args: list[str],
        *,
        cwd: Path | None = None,
        timeout: float = _UPDATE_TIMEOUT,
    ) -> str:
        exe = shutil.which(tool)
        if exe is None:
            raise AptError(f"`{tool}` not found: schedlab downloads kernels with Debian's apt")
        cmd = [exe, "-q", *self._options(), *args]
        try:
            out = subprocess.run(
                cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise AptError(f"{tool} {args[0]} timed out after {timeout:.0f} s") from exc
        if out.returncode != 0 or re.search(r"^(E|Err):", out.stdout + out.stderr, re.M):
            errs = [
                ln for ln in (out.stderr + out.stdout).splitlines() if ln.startswith(("E:", "Err"))
            ]
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

    def package_names(self, prefix: str) -> list[str]:
        """Real and virtual package names starting with ``prefix``."""
        with self._locked():
            return sorted(self._run("apt-cache", ["pkgnames", prefix]).split())

    def candidate_version(self, pkg: str) -> str | None:
        """The version apt would download, or None for a purely virtual name."""
        try:
            return self.show(pkg).get("Version")
        except AptError:
            return None

    def newest(self, pattern: re.Pattern[str], prefix: str) -> tuple[str, str]:
        """The (package, version) with the highest version among names matching ``pattern``.

        :param prefix: what every matching name starts with (narrows the name listing).
        :raises AptError: no real package matches.
        """
        found: list[tuple[str, str]] = []
        for name in self.package_names(prefix):
            if pattern.fullmatch(name) and (ver := self.candidate_version(name)):
                found.append((ver, name))
        if not found:
            raise AptError(f"no package matching {pattern.pattern} in {self.mirror} {self.suite}")
        ver, name = max(found, key=functools.cmp_to_key(_compare_first))
        return name, ver
