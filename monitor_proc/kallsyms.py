"""Recover the kernel symbol table from a stripped vmlinux's own kallsyms tables.

The tables are those emitted by the kernel's ``scripts/kallsyms.c`` (read by
``kernel/kallsyms.c``): ``kallsyms_num_syms``, ``kallsyms_names`` (length-prefixed,
token-compressed names whose first character is the nm type), ``kallsyms_markers``
(offset of every 256th name), ``kallsyms_token_table`` (256 NUL-terminated tokens),
``kallsyms_token_index`` (256 u16 offsets) and the addresses. Their order, alignment and
address encoding changed over 6.x..7.x, so everything is found by structure:

* the token table and its index are located first (256 strings followed by 256 u16
  offsets that agree with them);
* the markers are the increasing u32 run that ends near the token table;
* ``kallsyms_names`` is where a walk of the length bytes lands exactly on every marker,
  and ``kallsyms_num_syms`` is the u32 before it;
* the addresses are tried in each known encoding (self-relative s32, u32 + relative base,
  absolute-percpu, absolute u64) and accepted when they are sorted and ``_text`` lands on
  the image's ``.text``.
"""

from __future__ import annotations

import json
import logging
import mmap
import os
import re
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from monitor_proc.image import ImageError, KernelImage
from monitor_proc.symbols import SymbolTable, parse_system_map
from schedlab_shared.cache import cache_root

__all__ = (
    "REQUIRED_SYMBOLS",
    "ImageError",
    "KallsymsError",
    "KallsymsTables",
    "find_kallsyms",
    "load_symbols",
    "symbols_cache_dir",
)

log = logging.getLogger(__name__)
Buffer = bytes | bytearray | mmap.mmap

# Symbols every x86_64 kernel the monitor supports must have (validation, FACTS §4).
REQUIRED_SYMBOLS = (
    "_text",
    "runqueues",
    "__per_cpu_offset",
    "page_offset_base",
    "phys_base",
    "init_top_pgt",
    "nr_cpu_ids",
)
_CACHE_FORMAT = 2
_MAX_SYMS = 4_000_000
_MAX_NAME_RECORD = 2 + 0x3FFF  # ULEB128 length of at most two bytes (scripts/kallsyms.c)
_MAX_LAST_RECORD = 2 + 512  # KSYM_NAME_LEN: bounds the search for the names start
_TOKEN_RUN = re.compile(rb"(?:[\x21-\x7e]{1,64}\x00){256,}")


class KallsymsError(Exception):
    """The image has no kallsyms tables this reader understands."""


@dataclass(frozen=True)
class KallsymsTables:
    """Where the tables are (buffer offsets) and how addresses are encoded."""

    num_syms: int
    names_off: int
    markers_off: int
    token_table_off: int
    token_index_off: int
    addresses_off: int
    encoding: str  # "pcrel", "relbase", "abs_percpu" or "absolute"
    relative_base: int | None


# -- locating the tables ---------------------------------------------------------------


def _token_tables(buf: Buffer, start: int, end: int) -> Iterator[tuple[int, int, list[bytes]]]:
    """Yield (token_table_off, token_index_off, tokens) candidates in ``buf[start:end]``."""
    for m in _TOKEN_RUN.finditer(buf, start, end):
        tokens = bytes(buf[m.start() : m.end() - 1]).split(b"\x00")[-256:]
        tt = m.end() - sum(len(t) + 1 for t in tokens)
        expected, off = [], 0
        for t in tokens:
            expected.append(off)
            off += len(t) + 1
        for align in (2, 4, 8):
            ti = -(-m.end() // align) * align
            if ti + 512 <= len(buf) and list(struct.unpack_from("<256H", buf, ti)) == expected:
                yield tt, ti, tokens
                break


def _marker_runs(buf: Buffer, before: int, window: int) -> Iterator[tuple[int, list[int]]]:
    """Yield (markers_off, markers): increasing u32 runs starting at 0 that end before ``before``."""
    low = max(0, before - window)
    p = (before - 4) & ~3
    while p >= low:
        if struct.unpack_from("<I", buf, p)[0] == 0:
            markers = [0]
            q = p + 4
            while q + 4 <= before:
                v = struct.unpack_from("<I", buf, q)[0]
                if not 256 * 2 <= v - markers[-1] <= 256 * _MAX_NAME_RECORD:
                    break
                markers.append(v)
                q += 4
            # Between the markers and the token table: padding, or (6.2+ layouts)
            # kallsyms_seqs_of_names with 3 (or, at first, 4) bytes per symbol.
            gap, m = before - q, len(markers)
            if m > 1 and (gap < 8 or 3 * 256 * (m - 1) < gap <= 4 * 256 * m + 8):
                yield p, markers
        p -= 4


def _record_len(buf: Buffer, pos: int) -> tuple[int, int]:
    """(header bytes, compressed length) of the name record at ``pos``."""
    b = buf[pos]
    if b & 0x80:
        return 2, (b & 0x7F) | (buf[pos + 1] << 7)
    return 1, b


def _walk_names(buf: Buffer, names: int, n: int, markers: list[int], limit: int) -> int | None:
    """End offset of ``n`` name records at ``names`` if they agree with ``markers``."""
    pos = names
    for i in range(n):
        if i % 256 == 0 and pos - names != markers[i // 256]:
            return None
        if pos >= limit:
            return None
        h, ln = _record_len(buf, pos)
        if ln == 0:
            return None
        pos += h + ln
    return pos if pos <= limit else None


def _find_names(buf: Buffer, markers_off: int, markers: list[int]) -> tuple[int, int] | None:
    """(names_off, num_syms) for a marker run, or None."""
    m = len(markers)
    top = markers_off - markers[-1]
    for q in range(top, max(7, top - 256 * _MAX_LAST_RECORD), -1):
        for ns in (q - 4, q - 8):
            n = struct.unpack_from("<I", buf, ns)[0]
            if (n + 255) // 256 != m or n > _MAX_SYMS:
                continue
            end = _walk_names(buf, q, n, markers, markers_off)
            if end is not None and markers_off - end < 8:
                return q, n
    return None


def _decode_names(buf: Buffer, names: int, n: int, tokens: list[bytes]) -> list[tuple[str, str]]:
    """(type, name) of every symbol, in table order."""
    out = []
    pos = names
    for _ in range(n):
        h, ln = _record_len(buf, pos)
        pos += h
        raw = b"".join([tokens[b] for b in buf[pos : pos + ln]])
        pos += ln
        out.append((chr(raw[0]), raw[1:].decode("latin-1")))
    return out


# -- addresses -------------------------------------------------------------------------


def _address_candidates(
    buf: Buffer, n: int, ns_off: int, ti_end: int, to_vaddr: Callable[[int], int]
) -> Iterator[tuple[int, str, int | None, Callable[[], list[int]]]]:
    """Yield (offset, encoding, relative_base, decoder) for every placement worth trying."""

    def s32(off: int) -> tuple[int, ...]:
        return struct.unpack_from(f"<{n}i", buf, off)

    def pcrel(off: int) -> list[int]:
        base = to_vaddr(off)
        return [base + 4 * i + v for i, v in enumerate(s32(off))]

    def relbase(off: int, rb: int) -> list[int]:
        return [rb + (v & 0xFFFFFFFF) for v in s32(off)]

    def abs_percpu(off: int, rb: int) -> list[int]:
        return [v if v >= 0 else rb - 1 - v for v in s32(off)]

    def absolute(off: int) -> list[int]:
        return list(struct.unpack_from(f"<{n}Q", buf, off))

    def based(
        off: int, rb_offs: set[int]
    ) -> Iterator[tuple[int, str, int, Callable[[], list[int]]]]:
        for rb_off in sorted(rb_offs):
            if 0 <= rb_off and rb_off + 8 <= len(buf):
                rb = struct.unpack_from("<Q", buf, rb_off)[0]
                yield off, "relbase", rb, partial(relbase, off, rb)
                yield off, "abs_percpu", rb, partial(abs_percpu, off, rb)

    for off in sorted({-(-ti_end // a) * a for a in (1, 4, 8)}):
        if off + 4 * n + 8 > len(buf):  # 6.x..7.x: offsets follow the token index
            continue
        yield off, "pcrel", None, partial(pcrel, off)
        end = off + 4 * n
        yield from based(off, {-(-end // 8) * 8, -(-end // 4) * 4})
    for rb_off in sorted({(ns_off - 8) & ~7, ns_off - 8}):  # older: offsets, base, num_syms
        for off in (rb_off - 4 * n, rb_off - 4 * n - 4):
            if off >= 0:
                yield from based(off, {rb_off})
    abs_off = (ns_off & ~7) - 8 * n
    if abs_off >= 0:
        yield abs_off, "absolute", None, partial(absolute, abs_off)


def _names_sane(decoded: list[tuple[str, str]]) -> bool:
    """Nearly every symbol has an nm type letter and a printable name."""
    bad = sum(
        1
        for typ, name in decoded
        if not typ.isalpha() or not name or not name.isprintable() or " " in name
    )
    return bad <= len(decoded) // 1000


def _sorted_enough(addrs: list[int]) -> bool:
    bad = sum(1 for a, b in zip(addrs, addrs[1:], strict=False) if b < a)
    return bad <= len(addrs) // 1000


def find_kallsyms(
    buf: Buffer,
    to_vaddr: Callable[[int], int],
    text_addr: int | None,
    search: tuple[int, int] | None = None,
) -> tuple[KallsymsTables, list[tuple[str, int, str]]]:
    """Locate and decode the kallsyms tables in ``buf``.

    :param buf: the image bytes (a vmlinux file or a synthetic blob).
    :param to_vaddr: maps a buffer offset to its kernel virtual address (self-relative
        offsets are relative to where the table itself is linked).
    :param text_addr: expected address of ``_text``, or None to skip that check.
    :param search: (start, end) buffer range holding the tables (``.rodata``).
    :returns: the table locations and (name, address, type) of every symbol.
    :raises KallsymsError: no consistent set of tables.
    """
    start, end = search or (0, len(buf))
    for tt, ti, tokens in _token_tables(buf, start, end):
        for markers_off, markers in _marker_runs(buf, tt, 4 * _MAX_SYMS):
            found = _find_names(buf, markers_off, markers)
            if found is None:
                continue
            names_off, n = found
            decoded = _decode_names(buf, names_off, n, tokens)
            if not _names_sane(decoded):
                continue
            ns_off = (
                names_off - 4
                if struct.unpack_from("<I", buf, names_off - 4)[0] == n
                else names_off - 8
            )
            for off, enc, rb, decode in _address_candidates(buf, n, ns_off, ti + 512, to_vaddr):
                try:
                    addrs = decode()
                except KallsymsError:
                    continue
                if not _sorted_enough(addrs):
                    continue
                syms = [(name, addr, typ) for (typ, name), addr in zip(decoded, addrs, strict=True)]
                if text_addr is not None and not any(
                    nm == "_text" and a == text_addr for nm, a, _ in syms
                ):
                    continue
                tables = KallsymsTables(n, names_off, markers_off, tt, ti, off, enc, rb)
                return tables, syms
            break
    raise KallsymsError("no kallsyms tables found (is the kernel built with CONFIG_KALLSYMS?)")


# -- the image-level entry point and its cache ----------------------------------------


def symbols_cache_dir() -> Path:
    """Where recovered symbol tables are cached: ``<cache_root>/symbols``."""
    return cache_root() / "symbols"


def _recover(image: KernelImage) -> SymbolTable:
    rodata = image.sections.get(".rodata")
    search = (rodata.offset, rodata.offset + rodata.size) if rodata else None
    text = image.sections.get(".text")

    def to_vaddr(off: int) -> int:
        v = image.offset_to_vaddr(off)
        if v is None:
            raise KallsymsError(f"file offset {off:#x} is outside the loaded segments")
        return v

    tables, syms = find_kallsyms(image.data, to_vaddr, text.vaddr if text else None, search)
    log.info(
        "kallsyms: %d symbols, %s encoding, names at %#x",
        tables.num_syms,
        tables.encoding,
        tables.names_off,
    )
    table = SymbolTable(syms, f"kallsyms of {image.path}")
    missing = [s for s in REQUIRED_SYMBOLS if s not in table]
    if missing:
        raise KallsymsError(f"{image.path}: recovered kallsyms lack {', '.join(missing)}")
    return table


def _read_cache(path: Path) -> SymbolTable | None:
    try:
        doc = json.loads(path.read_text())
        if doc.get("format") != _CACHE_FORMAT:
            return None
        syms = doc["symbols"]
        if not isinstance(syms, dict) or not all(s in syms for s in REQUIRED_SYMBOLS):
            return None
        return SymbolTable.from_mapping(syms, doc["source"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_cache(path: Path, table: SymbolTable) -> None:
    doc = {"format": _CACHE_FORMAT, "source": table.source, "symbols": table.to_mapping()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    try:
        tmp.write_text(json.dumps(doc, separators=(",", ":")))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_symbols(
    vmlinux_path: str | Path, system_map: str | Path | None = None, cache_dir: Path | None = None
) -> SymbolTable:
    """The kernel's symbol table.

    A real ``System.map`` wins when given; a stub (Debian's one-liner) is ignored. Otherwise
    the kallsyms tables are recovered from the image and cached as
    ``<cache_dir>/<build-id>.json``.

    >>> load_symbols("vmlinux").address("__per_cpu_offset")

    :raises KallsymsError: no System.map and no usable kallsyms tables.
    :raises ImageError: ``vmlinux_path`` is not an ELF file.
    """
    if system_map is not None:
        table = parse_system_map(system_map)
        if table is not None:
            return table
        log.info("%s is a stub; recovering kallsyms from the image", system_map)
    image = KernelImage.open(vmlinux_path)
    try:
        path = (cache_dir or symbols_cache_dir()) / f"{image.cache_key()}.json"
        cached = _read_cache(path)
        if cached is not None:
            return cached
        table = _recover(image)
        try:
            _write_cache(path, table)
        except OSError as e:
            log.warning("cannot cache symbols in %s: %s", path, e)
        return table
    finally:
        image.close()
