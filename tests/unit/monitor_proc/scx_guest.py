"""A synthetic guest with a sched_ext scheduler attached, in one of the kernel layouts.

``layout``:

* ``"7.2"``: ``scx_root`` -> ``scx_sched`` with ``pcpu`` (``scx_sched_pcpu.event_stats``),
  ``watchdog_timeout``, ``aborting``, ``bypass_depth``, ``exit_kind``, ``dsq_hash``;
* ``"6.16"``: ``scx_sched.event_stats_cpu`` (a per-CPU ``scx_event_stats``), static
  ``scx_watchdog_timeout``, ``exit_kind`` only;
* ``"6.15"``: no ``scx_root``: global ``scx_ops``, per-CPU ``event_stats_cpu``, static
  ``scx_watchdog_timeout``, global ``dsq_hash``.

Every layout has the full ``scx_rq`` (local DSQ, flags, clock) and, unless
``schedstat=False``, the schedstat fields of ``struct rq``.
"""

from __future__ import annotations

import struct

from tests.unit.monitor_proc.conftest import TEXT, BtfBuilder, SyntheticGuest

EVENTS = (
    "SCX_EV_SELECT_CPU_FALLBACK",
    "SCX_EV_DISPATCH_LOCAL_DSQ_OFFLINE",
    "SCX_EV_DISPATCH_KEEP_LAST",
    "SCX_EV_ENQ_SKIP_EXITING",
    "SCX_EV_ENQ_SKIP_MIGRATION_DISABLED",
    "SCX_EV_REENQ_IMMED",
    "SCX_EV_REENQ_LOCAL_REPEAT",
    "SCX_EV_REFILL_SLICE_DFL",
    "SCX_EV_BYPASS_DURATION",
    "SCX_EV_BYPASS_DISPATCH",
    "SCX_EV_BYPASS_ACTIVATE",
    "SCX_EV_INSERT_NOT_OWNED",
    "SCX_EV_SUB_BYPASS_DISPATCH",
)

RQ_BASE = 40  # the conftest's struct rq fields end here
SCX_RQ_SIZE = 96  # local_dsq (64), nr_running, flags, clock
SCHED_VA_OFF = 0x2600000  # scx_sched, in the direct map
DSQ_OFF = 0x2700000  # user DSQs, 0x100 apart
BUCKETS_OFF = 0x2680000  # the bucket_table
PCPU_IN_AREA = 0x2000  # scx_sched_pcpu / event stats inside each CPU's per-CPU area
GLOBAL_EV_IN_AREA = 0xC00  # v6.15 event_stats_cpu inside each per-CPU area
WATCHDOG_SYM = TEXT + 0x240
JIFFIES_SYM = TEXT + 0x248
INTERVAL_SYM = TEXT + 0x250
TIMESTAMP_SYM = TEXT + 0x258


class ScxGuest(SyntheticGuest):
    def __init__(
        self,
        *,
        layout: str = "7.2",
        schedstat: bool = True,
        ncpus: int = 2,
        dsqs: tuple[tuple[int, int], ...] = ((0x8000_0000_0000_0001, 3), (7, 0)),
        buckets: int = 4,
        **kw,
    ) -> None:
        self.layout, self.schedstat = layout, schedstat
        self.dsq_list, self.nbuckets = dsqs, buckets
        super().__init__(BtfBuilder(), ncpus=ncpus, scx=True, **kw)
        self._scx_memory()

    # -- types --------------------------------------------------------------------------

    def _scx_btf(self, b: BtfBuilder, u32: int, u64: int) -> tuple[list[tuple], int, list]:
        s32, s64 = b.int("int", 4, signed=True), b.int("long long int", 8, signed=True)
        ulong = b.int("long unsigned int", 8)
        boolean = b.int("_Bool", 1)
        atomic = b.ref(8, "atomic_t", b.struct("", 4, [("counter", s32, 0)]))  # TYPEDEF
        fwd_head = len(b.records) + 2
        head = b.struct("rhash_head", 8, [("next", b.ptr(fwd_head), 0)])
        assert head == fwd_head
        dsq = b.struct(
            "scx_dispatch_q",
            64,
            [("nr", u32, 40 * 8), ("id", u64, 48 * 8), ("hash_node", head, 56 * 8)],
        )
        scx_rq = b.struct(
            "scx_rq",
            SCX_RQ_SIZE,
            [
                ("local_dsq", dsq, 0),
                ("nr_running", u32, 64 * 8),
                ("flags", u32, 68 * 8),
                ("clock", u64, 72 * 8),
            ],
        )
        extra = [("scx", scx_rq, RQ_BASE * 8)]
        size = RQ_BASE + SCX_RQ_SIZE
        if self.schedstat:
            si = b.struct("sched_info", 16, [("pcount", ulong, 0), ("run_delay", u64, 64)])
            extra += [
                ("rq_sched_info", si, size * 8),
                ("yld_count", u32, (size + 16) * 8),
                ("sched_count", u32, (size + 20) * 8),
                ("ttwu_count", u32, (size + 24) * 8),
            ]
            size += 32
        char_p = b.ptr(b.int("char", 1, signed=True))
        fwd_sd = len(b.records) + 2
        sd = b.struct(
            "sched_domain",
            32,
            [
                ("parent", b.ptr(fwd_sd), 0),
                ("flags", s32, 64),
                ("level", s32, 96),
                ("span_weight", u32, 128),
                ("name", char_p, 192),
            ],
        )
        assert sd == fwd_sd
        extra.append(("sd", b.ptr(sd), size * 8))
        self.sd_off = size
        size += 8
        stats = b.struct(
            "scx_event_stats", 8 * len(EVENTS), [(n, s64, 64 * i) for i, n in enumerate(EVENTS)]
        )
        bt = b.struct(
            "bucket_table",
            64,
            [
                ("size", u32, 0),
                ("nest", u32, 32),
                ("future_tbl", b.ptr(0), 48 * 8),
                ("buckets", b.array(b.ptr(0), u32, 0), 64 * 8),
            ],
        )
        ht = b.struct("rhashtable", 16, [("tbl", b.ptr(bt), 0), ("key_len", u32, 64)])
        name = b.array(b.int("char", 1, signed=True), u32, 128)
        ops = b.struct("sched_ext_ops", 136, [("flags", u64, 0), ("name", name, 64)])
        percpu: list = []
        if self.layout == "7.2":
            pcpu = b.struct(
                "scx_sched_pcpu",
                16 + stats_size(),
                [("sch", b.ptr(0), 0), ("flags", u64, 64), ("event_stats", stats, 128)],
            )
            b.struct(
                "scx_sched",
                184,
                [
                    ("", b.struct("", 136, [("ops", ops, 0)], union=True), 0),
                    ("dsq_hash", ht, 136 * 8),
                    ("pcpu", b.ptr(pcpu), 152 * 8),
                    ("bypass_depth", s32, 160 * 8),
                    ("aborting", boolean, 164 * 8),
                    ("watchdog_timeout", ulong, 168 * 8),
                    ("exit_kind", atomic, 176 * 8),
                ],
            )
        elif self.layout == "6.16":
            b.struct(
                "scx_sched",
                184,
                [
                    ("ops", ops, 0),
                    ("dsq_hash", ht, 136 * 8),
                    ("event_stats_cpu", b.ptr(stats), 152 * 8),
                    ("exit_kind", atomic, 176 * 8),
                ],
            )
        else:  # 6.15: the counters are a global per-CPU variable
            percpu.append((b.var("event_stats_cpu", stats), GLOBAL_EV_IN_AREA, stats_size()))
        return extra, size, percpu

    # -- memory -------------------------------------------------------------------------

    def _scx_memory(self) -> None:
        sch = self.pob + SCHED_VA_OFF
        self.sch = sch
        self.syms |= {
            "scx_watchdog_timeout": WATCHDOG_SYM,
            "jiffies": JIFFIES_SYM,
            "scx_watchdog_interval": INTERVAL_SYM,
            "scx_watchdog_timestamp": TIMESTAMP_SYM,
        }
        self.write_u64(JIFFIES_SYM, 100_000)
        self.write_u64(INTERVAL_SYM, 625)
        self.write_u64(TIMESTAMP_SYM, 99_900)
        self.write_va(sch, b"\0" * 184)
        self.write_va(sch + 8, b"qmap\0")
        start = self.syms["__per_cpu_start"]
        if self.layout == "7.2":
            self.write_u64(sch + 152, start + PCPU_IN_AREA)  # per-CPU pointer
            self.write_va(sch + 160, struct.pack("<i?", 2, True))  # bypass_depth, aborting
            self.write_u64(sch + 168, 1250)  # watchdog_timeout
            self.write_va(sch + 176, struct.pack("<i", 0))  # exit_kind
            ev_in_area = PCPU_IN_AREA + 16
        elif self.layout == "6.16":
            self.write_u64(sch + 152, start + PCPU_IN_AREA)
            self.write_va(sch + 176, struct.pack("<i", 1025))
            ev_in_area = PCPU_IN_AREA
        else:
            ev_in_area = GLOBAL_EV_IN_AREA
            del self.syms["scx_root"]
            self.syms["scx_ops"] = sch
            self.syms["dsq_hash"] = sch + 136
        if self.layout != "7.2":
            self.write_u64(WATCHDOG_SYM, 1250)
            del self.syms["scx_watchdog_interval"]
        for cpu in range(self.ncpus):
            area = self.pob + 0x2800000 + cpu * 0x10000
            vals = [(i + 1) * 10 + cpu for i in range(len(EVENTS))]
            self.write_va(area + ev_in_area, struct.pack(f"<{len(EVENTS)}q", *vals))
            rq = self.rq_va[cpu]
            # local_dsq.nr, scx.nr_running, scx.flags, scx.clock
            self.write_va(rq + RQ_BASE + 40, struct.pack("<I", 5 + cpu))
            self.write_va(rq + RQ_BASE + 64, struct.pack("<IIQ", 1 + cpu, 0x21, 7000 + cpu))
            if self.schedstat:
                base = rq + RQ_BASE + SCX_RQ_SIZE
                self.write_va(base, struct.pack("<QQIII", 40 + cpu, 900 + cpu, 1, 60 + cpu, 70))
        self._dsq_table(sch + 136)
        self._domains()

    def _domains(self) -> None:
        """Each CPU: MC (level 0, span 2) -> PKG (level 1, span ncpus)."""
        names = self.pob + 0x2698000
        self.write_va(names, b"MC\0\0PKG\0")
        for cpu in range(self.ncpus):
            mc, pkg = self.pob + 0x2690000 + cpu * 0x100, self.pob + 0x2690000 + cpu * 0x100 + 0x40
            self.write_va(mc, struct.pack("<QiiIIQ", pkg, 0x2F, 0, 2, 0, names))
            self.write_va(pkg, struct.pack("<QiiIIQ", 0, 0x102F, 1, self.ncpus, 0, names + 4))
            self.write_u64(self.rq_va[cpu] + self.sd_off, mc)

    def _dsq_table(self, ht: int) -> None:
        tbl = self.pob + BUCKETS_OFF
        self.write_u64(ht, tbl)
        self.write_va(tbl, struct.pack("<II", self.nbuckets, 0))
        self.write_u64(tbl + 48, 0)
        heads: dict[int, int] = {}
        for i, (dsq_id, nr) in enumerate(self.dsq_list):
            dsq = self.pob + DSQ_OFF + 0x100 * i
            self.write_va(dsq + 40, struct.pack("<I", nr))
            self.write_u64(dsq + 48, dsq_id)
            bucket = i % self.nbuckets
            # chain: new head -> old head ... -> nulls marker (odd)
            self.write_u64(dsq + 56, heads.get(bucket, (bucket << 1) | 1))
            heads[bucket] = dsq + 56
        for bucket in range(self.nbuckets):
            value = heads.get(bucket, 0)
            self.write_u64(tbl + 64 + 8 * bucket, value | (1 if bucket == 0 and value else 0))

    def expected_events(self) -> dict[str, int]:
        return {n: sum((i + 1) * 10 + c for c in range(self.ncpus)) for i, n in enumerate(EVENTS)}


def stats_size() -> int:
    return 8 * len(EVENTS)


def writable_program(g: SyntheticGuest):
    """A Program over ``g`` whose memory takes writes (the watchdog override)."""
    from monitor_proc.btf import Btf
    from monitor_proc.memory import ReaderMemory
    from monitor_proc.program import Program
    from monitor_proc.symbols import SymbolTable
    from tests.unit.monitor_proc.conftest import BANNER

    syms = SymbolTable(((n, a, "D") for n, a in g.syms.items()), "synthetic")
    return Program(
        None,
        ReaderMemory(g.mem.read, write=g.mem.write),
        symbols=syms,
        btf=Btf(g.btf_blob),
        probe=(g.syms["linux_banner"], BANNER),
    )
