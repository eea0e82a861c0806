"""One testbed run's inputs: what to run, where, with which environment and writable shares.

The host writes them into a job directory that L1 mounts read-only (9p tag ``schedlab_job``),
so the command never travels on the kernel command line:

- ``cmd.sh``: a POSIX sh script (every word ``shlex``-quoted), started with an empty
  environment, that exports the selected variables, enters the host cwd and ``exec``s CMD;
- ``mounts``: ``TAG<TAB>PATH`` lines, the writable 9p shares to mount over ``/host/PATH``.

>>> spec = JobSpec.for_command(["sh", "-c", "echo hi"], shares=default_shares(None))
>>> write_job(spec, job_dir)
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from schedlab_shared.cache import cache_root

__all__ = (
    "HIDDEN_PREFIXES",
    "JobError",
    "JobSpec",
    "Share",
    "default_shares",
    "project_root",
    "render_command_script",
    "render_mounts",
    "select_env",
    "write_job",
)

#: Host paths L1's chroot covers with its own mounts (tmpfs, bind mounts): invisible inside.
HIDDEN_PREFIXES = (Path("/tmp"), Path("/proc"), Path("/sys"), Path("/dev"))
_ENV_NAMES = frozenset(
    {"PATH", "HOME", "CI", "TERM", "LANG", "LC_ALL", "TZ", "USER", "LOGNAME", "VIRTUAL_ENV"}
)
_ENV_PREFIXES = ("SCHEDLAB_", "PYTHON", "PYENV_")
_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MAX_SHARES = 8


class JobError(ValueError):
    """The job cannot run in the testbed as given (e.g. a path L1 cannot see)."""


@dataclass(frozen=True)
class Share:
    """A host directory L1 mounts writable over the same path inside its chroot.

    :param tag: 9p mount tag (``share<N>``).
    :param path: absolute, resolved host path.
    """

    tag: str
    path: Path


def _hidden(path: Path) -> bool:
    return any(path == p or p in path.parents for p in HIDDEN_PREFIXES)


def project_root(cwd: Path) -> Path:
    """The git top-level of ``cwd``, or ``cwd`` itself outside a git tree."""
    try:
        out = subprocess.run(
            ["git", "-C", str(cwd), "rev-parse", "--show-toplevel"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return cwd
    top = out.stdout.strip()
    return Path(top).resolve() if out.returncode == 0 and top else cwd


def default_shares(share: Path | None, cwd: Path | None = None) -> tuple[Share, ...]:
    """The writable shares: the project tree (``share`` or the cwd's git top) and the schedlab cache.

    Parents come before children so nested mounts stack correctly; duplicates are dropped.

    :raises JobError: a share lies where L1 hides host files (/tmp, /proc, /sys, /dev).
    """
    cwd = (cwd or Path.cwd()).resolve()
    project = share.resolve() if share is not None else project_root(cwd)
    cache = cache_root()
    cache.mkdir(parents=True, exist_ok=True)
    paths = sorted({project, cache.resolve()}, key=lambda p: (len(p.parts), str(p)))
    for p in paths:
        if not p.is_dir():
            raise JobError(f"share {p} is not a directory")
        if _hidden(p):
            raise JobError(f"share {p} is under {'/'.join(p.parts[:2])[1:]}, which L1 hides")
        if any(c in str(p) for c in "\t\n"):
            raise JobError(f"share path {p!r} contains a tab or newline")
    return tuple(Share(f"share{i}", p) for i, p in enumerate(paths))


def select_env(
    host_env: Mapping[str, str], extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment CMD gets: PATH, HOME, CI, locale/terminal basics, SCHEDLAB_*, PYTHON*,
    PYENV_* from ``host_env``, then ``extra`` on top.

    :raises JobError: a name in ``extra`` is not a valid environment variable name.
    """
    env = {
        k: v for k, v in host_env.items()
        if k in _ENV_NAMES or k.startswith(_ENV_PREFIXES)
    }  # fmt: skip
    for k, v in (extra or {}).items():
        if not _ENV_NAME_RE.fullmatch(k):
            raise JobError(f"invalid environment variable name {k!r}")
        env[k] = v
    return env


@dataclass(frozen=True)
class JobSpec:
    """Everything L1 needs to run CMD.

    :param argv: CMD and its arguments.
    :param cwd: host working directory, entered inside the chroot.
    :param env: CMD's complete environment.
    :param shares: writable shares.
    """

    argv: tuple[str, ...]
    cwd: Path
    env: Mapping[str, str]
    shares: tuple[Share, ...]

    @classmethod
    def for_command(
        cls,
        argv: list[str],
        *,
        shares: tuple[Share, ...],
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> JobSpec:
        """A spec with the host cwd and :func:`select_env` of ``os.environ`` plus ``env``.

        :raises JobError: empty command, or a cwd that L1 cannot see.
        """
        if not argv:
            raise JobError("no command given")
        if len(shares) > _MAX_SHARES:
            raise JobError(f"at most {_MAX_SHARES} shares")
        cwd = (cwd or Path.cwd()).resolve()
        if _hidden(cwd):
            raise JobError(f"cwd {cwd} is hidden inside the testbed (L1 mounts its own /tmp)")
        return cls(tuple(argv), cwd, select_env(os.environ, env), shares)


def render_command_script(spec: JobSpec) -> str:
    """The ``cmd.sh`` that L1 runs with ``/bin/sh`` in the chroot, starting from an empty environment."""
    exports = "".join(f"export {shlex.quote(f'{k}={v}')}\n" for k, v in sorted(spec.env.items()))
    cmd_words = " ".join(shlex.quote(a) for a in spec.argv)
    cwd = shlex.quote(str(spec.cwd))
    return (
        "# schedlab testbed job (generated)\n"
        f"{exports}"
        f"cd -- {cwd} || {{ echo 'schedlab testbed: cannot enter '{cwd}' inside L1' >&2; exit 127; }}\n"
        f"exec {cmd_words}\n"
    )


def render_mounts(shares: tuple[Share, ...]) -> str:
    """The ``mounts`` file: one ``TAG<TAB>PATH`` line per writable share."""
    return "".join(f"{s.tag}\t{s.path}\n" for s in shares)


def write_job(spec: JobSpec, job_dir: Path) -> None:
    """Write ``cmd.sh`` and ``mounts`` into ``job_dir`` (created if missing)."""
    job_dir.mkdir(parents=True, exist_ok=True)
    (job_dir / "cmd.sh").write_text(render_command_script(spec))
    (job_dir / "mounts").write_text(render_mounts(spec.shares))
