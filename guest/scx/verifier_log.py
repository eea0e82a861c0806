"""Make a scheduler's failed-load output readable: collapse the verifier's loop dumps.

libbpf prints the kernel verifier's log between ``-- BEGIN PROG LOAD LOG --`` and
``-- END PROG LOAD LOG --``. A bounded loop that the verifier walks shows as the same
block of instructions over and over, each copy with other register-state annotations
(``; R1_w=scalar(...)``) and, when the loop is unrolled, other instruction indices. Such
runs are cut down to the first and the last iteration around a marker line.

>>> body = ["; for (i = 0; i < n; i++) @ qmap.bpf.c:40", "5: (07) r1 += 1", "6: (2d) if r1 > r2 goto pc-2"]
>>> lines = [f"{ln}  ; R1_w={k}" if ln[0].isdigit() else ln for k in range(5) for ln in body]
>>> out = collapse_loops(lines)
>>> out[0]
'--- loop: the next 3 lines repeat 5 times ---'

Pure and stdlib only; the host imports it too.
"""

from __future__ import annotations

__all__ = ("MAX_PERIOD", "MIN_REPEATS", "collapse_loops", "normalize", "summarize")

MIN_REPEATS = 3
MAX_PERIOD = 256  # longest loop body looked for, in lines
_MIN_SPAN = 8  # a run shorter than this (in lines) is left alone: collapsing would not help
_MAX_PASSES = 3  # nested loops: each pass collapses one level
_LINE_MAX = 512


def normalize(line: str) -> str:
    """A verifier log line without what changes from one loop iteration to the next.

    Drops the instruction index (``12: ``), register-state annotations (``; R1_w=...``,
    ``; frame1: ...``), the state shown after a branch (``goto pc+2 15: R0=...``), and turns
    state-only lines (``12: R0=1 R6=ctx()``, ``from 12 to 15: ...``) into ``<state>``.
    Other lines (source comments, libbpf's own lines) come back stripped.
    """
    t = line.strip()
    if t.startswith("from ") and " to " in t and ": " in t:
        return "<state>"
    if not t[:1].isdigit():
        return t
    colon = t.find(": ")
    if colon > 0 and t[:colon].isdigit():
        t = t[colon + 2 :]
        if t.startswith("frame") or (t[:1] == "R" and t[1:2].isdigit()):
            return "<state>"
    i = t.find("; frame")
    if i < 0:
        i = t.find("; R")
        if i >= 0 and not t[i + 3 : i + 4].isdigit():
            i = -1
    if i >= 0:
        t = t[:i].rstrip()
    g = t.find("goto pc")
    if g >= 0:
        j = g + 7
        while j < len(t) and (t[j] in "+-" or t[j].isdigit()):
            j += 1
        t = t[:j]
    return t


def _repeats(norms: list[str], i: int, p: int) -> int:
    block = norms[i : i + p]
    k = 1
    while i + (k + 1) * p <= len(norms) and norms[i + k * p : i + (k + 1) * p] == block:
        k += 1
    return k


def _next_same(norms: list[str]) -> list[int]:
    """For each index, the next index holding the same normalized line (len(norms) if none)."""
    n = len(norms)
    nxt = [n] * n
    seen: dict[str, int] = {}
    for i in range(n - 1, -1, -1):
        nxt[i] = seen.get(norms[i], n)
        seen[norms[i]] = i
    return nxt


def _best_loop(norms: list[str], nxt: list[int], i: int) -> tuple[int, int]:
    """(period, repeats) of the longest run of a repeated block starting at ``i``, or (0, 0)."""
    n = len(norms)
    best_p = best_k = 0
    j = nxt[i]
    while j < n and j - i <= MAX_PERIOD:
        p = j - i
        if i + MIN_REPEATS * p > n:
            break  # a longer period fits even less often
        k = _repeats(norms, i, p)
        if k >= MIN_REPEATS and k * p > best_k * best_p:
            best_p, best_k = p, k
        j = nxt[j]
    return best_p, best_k


def _one_pass(lines: list[str]) -> list[str]:
    norms = [normalize(ln) for ln in lines]
    nxt = _next_same(norms)
    out: list[str] = []
    i = 0
    while i < len(lines):
        p, k = _best_loop(norms, nxt, i)
        if p and k * p >= _MIN_SPAN:
            out.append(f"--- loop: the next {p} lines repeat {k} times ---")
            out.extend(lines[i : i + p])
            out.append(f"--- {k - 2} identical iterations omitted; the last one: ---")
            out.extend(lines[i + (k - 1) * p : i + k * p])
            out.append("--- end of loop ---")
            i += k * p
        else:
            out.append(lines[i])
            i += 1
    return out


def collapse_loops(lines: list[str]) -> list[str]:
    """Replace each run of 3 or more copies of a block (up to 256 lines) by its first and
    last copy between marker lines; nested loops take one more pass per level (up to 3).

    :param lines: log lines without their line ends.
    :return: the new list; unchanged content when nothing repeats.
    """
    for _ in range(_MAX_PASSES):
        out = _one_pass(lines)
        if len(out) == len(lines):
            return out
        lines = out
    return lines


def summarize(text: str, max_lines: int = 80, max_chars: int = 8000) -> str:
    """The scheduler output an error message starts with: loops collapsed, long lines cut,
    and when still too long the head and the tail (where libbpf and the verifier say what
    failed) around a line counting what was left out.

    :param text: the output (stdout and stderr in arrival order).
    """
    lines = [ln if len(ln) <= _LINE_MAX else ln[:_LINE_MAX] + " [...]" for ln in text.splitlines()]
    lines = collapse_loops(lines)
    while lines and not lines[-1].strip():
        lines.pop()
    if len(lines) <= max_lines and sum(len(ln) + 1 for ln in lines) <= max_chars:
        return "\n".join(lines)
    head_n = max(1, (max_lines * 2) // 3)
    tail_n = max(1, max_lines - head_n - 1)
    head, tail = lines[:head_n], lines[-tail_n:]
    budget = max_chars // 2
    while len(head) > 1 and sum(len(ln) + 1 for ln in head) > budget:
        head.pop()
    while len(tail) > 1 and sum(len(ln) + 1 for ln in tail) > budget:
        tail.pop(0)
    left_out = len(lines) - len(head) - len(tail)
    return "\n".join([*head, f"[... {left_out} lines left out ...]", *tail])
