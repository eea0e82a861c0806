"""``python -m collector_proc.fuzz``: hostile bulk-port input through the whole collector path.

Each input is one byte stream, fed to the collector's :class:`~collector_proc.ingest.Ingest`
(frame decoder, payload schemas, run files, checkpoint) in a few chunks split at random
boundaries, as the VMM would deliver it. Inputs are of five kinds: valid frames with a
valid payload, valid frames (valid crc) with a hostile msgpack value, valid frames whose
msgpack bytes are mutated (crc recomputed, so the unpacker sees them), mutated streams of
several frames (crc not fixed), and random bytes. Inputs follow each other on one stream,
so a frame cut short by one input runs into the next.

Every ``restart_every`` inputs the collector is checkpointed, closed and reopened (the
restored state must equal the saved one); every ``epoch`` inputs the stream ends, every
message line is parsed as strict JSON and the run directory (a temporary one) is replaced.
A crash is any exception out of the collector, a hang is an input that takes longer than
``hang_s`` (interrupted by SIGALRM), and memory is the process's RSS: after warm-up it must
stay flat however many inputs follow.
"""

from __future__ import annotations

import argparse
import binascii
import json
import logging
import os
import random
import resource
import shutil
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import msgpack

from guest import schema, wire
from guest.wire import FrameType
from schedlab_shared.bus.vmm import Stream

from .ingest import Ingest

__all__ = ("FuzzReport", "run_fuzz")

_T = FrameType
_GOOD: dict[FrameType, dict[str, Any]] = {
    _T.SYS_RDY: {"kernel": "7.2.13", "cpus": 2, "boot_ns": 5_200_000_000},
    _T.PHASE: {"name": "workload", "t_ns": 123},
    _T.STDOUT: {"data": b"hello\n"},
    _T.STDERR: {"data": b"\x00\xff"},
    _T.LOG: {"level": "warning", "msg": "\u00fc"},
    _T.RESULT: {
        "passed": True,
        "reason": "ok",
        "workers": [
            {"cgroup": "cg0", "pid": 7, "work_units": 1, "cpu_time_ns": 5, "max_gap_ms": 1.5}
        ],
    },
    _T.EXIT: {"code": 0},
    _T.DUMP: {"source": "kmsg", "data": b"<6>hello\n"},
    _T.INPUTS_ACK: {
        "ok": True,
        "error": "",
        "files": [
            {"kind": "include", "name": "a", "path": "/run/a", "size": 1, "sha256": "0" * 64}
        ],
    },
}
_TYPES = list(_GOOD)
_DEEP: Any = 0
for _ in range(schema.MAX_DEPTH + 2):
    _DEEP = [_DEEP]
_SCALARS: list[Any] = [
    0,
    1,
    -1,
    2**63 - 1,
    -(2**63),
    2**64 - 1,
    0.5,
    float("nan"),
    float("inf"),
    float("-inf"),
    "",
    "a",
    "\u00fc\u20ac",
    "\x00",
    b"",
    b"\xff\x00",
    None,
    True,
    False,
    msgpack.Timestamp(1, 2),
    msgpack.Timestamp(2**34, 999_999_999),
    msgpack.ExtType(5, b"xy"),
]
_RARE: list[Any] = [
    "s" * (schema.MAX_STR + 1),
    b"b" * (schema.MAX_STR + 1),
    [0] * (schema.MAX_ITEMS + 1),
    {str(i): i for i in range(schema.MAX_ITEMS + 1)},
    _DEEP,
    [[[]] * 4000] * 3,  # more lists than MAX_CONTAINERS
]
_KEYS: list[Any] = ["data", "code", "msg", "workers", "passed", "x", 1, -7, b"k", 2.5, None, True]


def _value(rng: random.Random, depth: int = 0) -> Any:
    r = rng.random()
    if r < 0.01:
        return rng.choice(_RARE)
    if r < 0.03:  # a chain of lists and maps around the nesting bound
        v = rng.choice(_SCALARS)
        for _ in range(rng.randrange(schema.MAX_DEPTH - 3, schema.MAX_DEPTH + 4)):
            v = [v] if rng.random() < 0.5 else {"k": v}
        return v
    if depth > 3 or r < 0.6:
        return rng.choice(_SCALARS)
    n = rng.randrange(5)
    if r < 0.8:
        return [_value(rng, depth + 1) for _ in range(n)]
    return {rng.choice(_KEYS): _value(rng, depth + 1) for _ in range(n)}


def _hostile_payload(rng: random.Random, ftype: FrameType) -> Any:
    """A near-valid payload: one field added, replaced or removed; or any value at all."""
    p = dict(_GOOD[ftype])
    r = rng.random()
    if r < 0.4:
        p[rng.choice(_KEYS)] = _value(rng)
    elif r < 0.8:
        p[rng.choice(list(p))] = _value(rng)
    elif r < 0.9:
        del p[rng.choice(list(p))]
    else:
        return _value(rng)
    return p


def _frame(ftype: int, body: bytes) -> bytes:
    prefix = wire._PREFIX.pack(wire.MAGIC, wire.VERSION, ftype, len(body))
    return prefix + binascii.crc32(body, binascii.crc32(prefix)).to_bytes(4, "little") + body


def _pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def _mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randrange(1, 4)):
        op = rng.random()
        if not b:
            break
        i = rng.randrange(len(b))
        if op < 0.4:
            b[i] ^= 1 << rng.randrange(8)
        elif op < 0.6:
            b[i] = rng.choice((0x00, 0xFF, 0xC1, 0xDD, 0xDF, 0xC7, 0xD4, 0x7F))
        elif op < 0.75:
            b.insert(i, rng.randrange(256))
        elif op < 0.9:
            del b[i : i + rng.randrange(1, 9)]
        else:
            b[i:i] = b[i : i + rng.randrange(1, 32)]  # a duplicated run
    return bytes(b)


class _Generator:
    """The five kinds of input, in fixed proportions."""

    KINDS = ("valid", "hostile", "mutated_msgpack", "mutated_stream", "random")

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.counts = dict.fromkeys(self.KINDS, 0)

    def __call__(self) -> bytes:
        rng = self.rng
        r = rng.random()
        ftype = rng.choice(_TYPES)
        if r < 0.15:
            kind, data = "valid", wire.encode_frame(ftype, _GOOD[ftype])
        elif r < 0.55:
            type_byte = ftype if rng.random() < 0.95 else rng.randrange(256)
            kind, data = "hostile", _frame(type_byte, _pack(_hostile_payload(rng, ftype)))
        elif r < 0.75:
            kind, data = "mutated_msgpack", _frame(ftype, _mutate(rng, _pack(_GOOD[ftype])))
        elif r < 0.9:
            frames = [
                wire.encode_frame(t, _GOOD[t]) for t in rng.choices(_TYPES, k=rng.randrange(1, 4))
            ]
            kind, data = "mutated_stream", _mutate(rng, b"".join(frames))
        else:
            n = rng.randrange(1, 300)
            data = rng.randbytes(n)
            if rng.random() < 0.5:  # magic-laden: more candidate headers
                data = wire.MAGIC + bytes([wire.VERSION]) + data
            kind = "random"
        self.counts[kind] += 1
        return data


def _split(rng: random.Random, data: bytes) -> list[bytes]:
    if len(data) < 2 or rng.random() < 0.5:
        return [data]
    cuts = sorted(rng.randrange(1, len(data)) for _ in range(rng.randrange(1, 6)))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class _Hang(BaseException):
    """Raised by SIGALRM inside an input that took too long (a BaseException, so the
    collector's transaction rolls the input back like any other interruption)."""


def _on_alarm(_signum: int, _frame: object) -> None:
    raise _Hang


@dataclass
class FuzzReport:
    inputs: int = 0
    bytes: int = 0
    seconds: float = 0.0
    inputs_per_s: float = 0.0
    crashes: int = 0
    hangs: int = 0
    internal_errors: int = 0
    slowest_ms: float = 0.0
    restarts: int = 0
    epochs: int = 0
    frames: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    kinds: dict[str, int] = field(default_factory=dict)
    rss_start_mib: float = 0.0
    rss_warm_mib: float = 0.0
    rss_end_mib: float = 0.0
    rss_peak_mib: float = 0.0
    rss_growth_mib: float = 0.0
    failures: list[str] = field(default_factory=list)  # the first few, with their input

    @property
    def clean(self) -> bool:
        return not (self.crashes or self.hangs or self.internal_errors)


class _Run:
    """One fuzzing session over a temporary directory (removed at the end)."""

    def __init__(self, report: FuzzReport, restart_every: int, epoch: int, hang_s: float) -> None:
        self.report, self.restart_every, self.epoch, self.hang_s = (
            report,
            restart_every,
            epoch,
            hang_s,
        )
        self.tmp = Path(tempfile.mkdtemp(prefix="schedlab-fuzz-"))
        self.totals: dict[str, int] = {}
        self.ingest = self._open_fresh()

    def _open_fresh(self) -> Ingest:
        shutil.rmtree(self.tmp / "run", ignore_errors=True)
        return Ingest(self.tmp / "run")

    def feed(self, rng: random.Random, data: bytes) -> None:
        r = self.report
        t0 = time.perf_counter()
        signal.setitimer(signal.ITIMER_REAL, self.hang_s)
        try:
            try:
                for chunk in _split(rng, data):
                    self.ingest.process(Stream.BULK, chunk)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except _Hang:
            r.hangs += 1
            self._fail("hang", data, "")
        except Exception as exc:
            r.crashes += 1
            self._fail("crash", data, "".join(traceback.format_exception_only(exc)).strip())
        r.slowest_ms = max(r.slowest_ms, (time.perf_counter() - t0) * 1000)
        r.inputs += 1
        r.bytes += len(data)
        if r.inputs % self.epoch == 0:
            self.end_epoch()
        elif r.inputs % self.restart_every == 0:
            self.restart(rng)

    def _fail(self, what: str, data: bytes, why: str) -> None:
        if len(self.report.failures) < 5:
            self.report.failures.append(
                f"{what} on input {self.report.inputs}: {why} input={data[:200].hex()}"
            )

    def restart(self, rng: random.Random) -> None:
        """Checkpoint, close, reopen: the restored collector must be the saved one."""
        ing = self.ingest
        before = (ing.message_count, ing.decoder.consumed, ing.decoder.pending, ing.counters())
        if rng.random() < 0.3 and before[0]:
            ing.messages(rng.randrange(before[0]), 50)  # the status path reads back, too
        ing.save()
        ing.close()
        self.ingest = Ingest(self.tmp / "run")
        after = (
            self.ingest.message_count,
            self.ingest.decoder.consumed,
            self.ingest.decoder.pending,
            self.ingest.counters(),
        )
        if after != before:
            self.report.crashes += 1
            self._fail("restore", b"", f"restored {after[:2]} != saved {before[:2]}")
        self.report.restarts += 1

    def end_epoch(self) -> None:
        """End of stream: drain, check every line is strict JSON, then a fresh directory."""
        ing = self.ingest
        try:
            ing.finish()
            n = ing.message_count
            for start in range(0, n, 5000):
                for rec in ing.messages(start, 5000):
                    json.dumps(rec, allow_nan=False)
        except Exception as exc:
            self.report.crashes += 1
            self._fail("epoch", b"", "".join(traceback.format_exception_only(exc)).strip())
        self._account(ing)
        ing.close()
        self.report.epochs += 1
        self.ingest = self._open_fresh()

    def _account(self, ing: Ingest) -> None:
        c = ing.counters()
        self.report.frames += c["frames"]
        self.report.internal_errors += c["internal_errors"]
        for k in (
            *schema.KINDS,
            "bad_payload",
            "unknown_type",
            "bad_crc",
            "oversize",
            "bad_version",
        ):
            self.totals[k] = self.totals.get(k, 0) + c[k]

    def close(self) -> None:
        self._account(self.ingest)
        self.ingest.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.report.rejected = dict(self.totals)


def run_fuzz(
    inputs: int = 1_000_000,
    seed: int = 0,
    seconds: float | None = None,
    *,
    restart_every: int = 997,
    epoch: int = 20_000,
    hang_s: float = 5.0,
    progress: Any = None,
) -> FuzzReport:
    """Fuzz the collector path with ``inputs`` inputs (or for ``seconds``, whichever ends first).

    :param progress: called with the report about every 100 000 inputs.
    :return: the figures; :attr:`FuzzReport.clean` says whether anything broke.
    """
    mib = 1 << 20
    report = FuzzReport(rss_start_mib=_rss() / mib)
    rng = random.Random(seed)
    gen = _Generator(rng)
    old = signal.signal(signal.SIGALRM, _on_alarm)
    quiet = logging.getLogger("collector_proc")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # rejections are the point here; internal errors still show
    run = _Run(report, restart_every, epoch, hang_s)
    warm_at = min(inputs // 10, 50_000)
    t0 = time.perf_counter()
    deadline = t0 + seconds if seconds else float("inf")
    try:
        for i in range(inputs):
            if i == warm_at:
                report.rss_warm_mib = _rss() / mib
            run.feed(rng, gen())
            if i % 1024 == 0 and time.perf_counter() > deadline:
                break
            if progress is not None and i and i % 100_000 == 0:
                progress(report)
    finally:
        report.seconds = time.perf_counter() - t0
        run.close()
        signal.signal(signal.SIGALRM, old)
        quiet.setLevel(level)
    report.inputs_per_s = report.inputs / report.seconds if report.seconds else 0.0
    report.kinds = dict(gen.counts)
    report.rss_end_mib = _rss() / mib
    report.rss_peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report.rss_growth_mib = report.rss_end_mib - (report.rss_warm_mib or report.rss_start_mib)
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="collector_proc.fuzz", description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seconds", type=float, default=None, help="stop after this long")
    ap.add_argument(
        "--max-rss-growth-mib",
        type=float,
        default=64.0,
        help="RSS growth after warm-up that counts as an unbounded allocation",
    )
    ap.add_argument("--json", action="store_true", help="print the report as JSON")
    args = ap.parse_args(argv)
    if args.inputs < 1:
        ap.error("--inputs must be at least 1")

    def progress(r: FuzzReport) -> None:
        print(
            f"fuzz: {r.inputs} inputs, {r.crashes} crashes, {r.hangs} hangs, "
            f"RSS {_rss() / (1 << 20):.1f} MiB",
            file=sys.stderr,
            flush=True,
        )

    report = run_fuzz(args.inputs, args.seed, args.seconds, progress=progress)
    grew = report.rss_growth_mib > args.max_rss_growth_mib
    if grew:
        report.failures.append(f"RSS grew {report.rss_growth_mib:.1f} MiB after warm-up")
    if args.json:
        print(json.dumps(asdict(report)))
    else:
        for k, v in asdict(report).items():
            print(f"{k}: {v}")
    return 0 if report.clean and not grew else 1


if __name__ == "__main__":
    sys.exit(main())
