"""Options of a scheduler, read from the usage text its ``-h`` prints.

Two layouts are understood: the kernel examples' getopt style (``  -e COUNT   Trigger ...``)
and clap's (``  -s, --slice-us <SLICE_US>  ...`` with the description on the same or the
following, deeper-indented lines). The examples' text can also be taken from their C source
(``help_fmt``), for binaries whose ``-h`` cannot run on this host.

>>> u = parse_usage("Usage: scx_simple [-f] [-v]\\n\\n  -f            Use FIFO\\n")
>>> u.options[0]
UsageOption(short='-f', long=None, arg=None, help='Use FIFO')
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

__all__ = ("Usage", "UsageOption", "help_from_source", "parse_usage")

_MAX_TEXT = 64 * 1024
_ARG = r"(?:<[^>]+>|\[[^\]]+\]|[A-Z][A-Z0-9_|.-]*)"
_LONG = r"--[A-Za-z0-9][\w-]*"
_OPT_RE = re.compile(
    rf"^(?P<indent>[ \t]{{1,12}})"
    rf"(?:(?P<short>-[A-Za-z0-9?])(?:,?[ ]+(?P<long>{_LONG}))?|(?P<long_only>{_LONG}))"
    rf"(?:[ =](?P<arg>{_ARG}))?(?:\.\.\.)?(?:[ \t]{{2,}}(?P<help>\S.*?))?[ \t]*$"
)


@dataclass(frozen=True)
class UsageOption:
    """One option: ``-e`` / ``--error-after``, its argument name, its description."""

    short: str | None
    long: str | None
    arg: str | None
    help: str

    def to_dict(self) -> dict[str, str | None]:
        return asdict(self)


@dataclass(frozen=True)
class Usage:
    """A parsed usage text: the description's first line, the synopsis, the options."""

    summary: str
    synopsis: str
    options: tuple[UsageOption, ...]

    def option(self, flag: str) -> UsageOption | None:
        """The option spelled ``flag`` (short or long), or None."""
        return next((o for o in self.options if flag in (o.short, o.long)), None)


def _synopsis(lines: list[str]) -> str:
    for i, ln in enumerate(lines):
        if ln.lower().startswith("usage:"):
            parts = [ln.split(":", 1)[1].strip()]
            for cont in lines[i + 1 :]:  # the synopsis may wrap onto indented lines
                if not cont.strip() or not cont[:1].isspace() or _OPT_RE.match(cont):
                    break
                parts.append(cont.strip())
            return " ".join(parts)
    return ""


def parse_usage(text: str) -> Usage:
    """Parse a usage text into its options (lines that are not options are skipped)."""
    lines = text[:_MAX_TEXT].expandtabs(8).splitlines()
    summary = next((ln.strip() for ln in lines if ln.strip()), "")
    options: list[UsageOption] = []
    indent = -1  # indentation of the last option line; -1 outside an option list
    for ln in lines:
        m = _OPT_RE.match(ln)
        if m:
            arg = m.group("arg")
            options.append(
                UsageOption(
                    m.group("short"),
                    m.group("long") or m.group("long_only"),
                    arg.strip("<>[]") if arg else None,
                    m.group("help") or "",
                )
            )
            indent = len(m.group("indent"))
        elif indent >= 0 and ln.strip() and len(ln) - len(ln.lstrip()) > indent:
            last = options[-1]  # a description continued on deeper-indented lines
            options[-1] = UsageOption(
                last.short, last.long, last.arg, f"{last.help} {ln.strip()}".strip()
            )
        else:
            indent = -1
    return Usage(summary=summary, synopsis=_synopsis(lines), options=tuple(options))


_HELP_FMT_RE = re.compile(r"\bhelp_fmt\s*\[\s*\]\s*=\s*((?:\s*\"(?:[^\"\\\n]|\\.)*\")+)\s*;")
_LITERAL_RE = re.compile(r"\"((?:[^\"\\\n]|\\.)*)\"")
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'"}


def help_from_source(c_source: str, prog: str) -> str | None:
    """The text an example prints for ``-h``, taken from its ``help_fmt`` C string.

    :param c_source: the scheduler's ``.c`` file.
    :param prog: the program name substituted for ``%s``.
    :return: the text, or None when the file has no ``help_fmt``.
    """
    m = _HELP_FMT_RE.search(c_source)
    if not m:
        return None
    raw = "".join(_LITERAL_RE.findall(m.group(1)))
    text = re.sub(r"\\(.)", lambda e: _ESCAPES.get(e.group(1), e.group(1)), raw)
    return text.replace("%s", prog, 1).replace("%%", "%")
