"""guest/scx/exit_parse.py against text written from the 7.2 format strings.

Kernel lines follow ``scx_log_sched_disable()`` (``sched_ext: BPF %s "%s" disabled (%s)``,
``sched_ext: %s: %s``, ``stack_trace_print(bt, len, 2)`` = three spaces per frame), the
watchdog's ``"%s[%d] failed to run for %u.%03us"``; the scheduler side follows
``UEI_REPORT`` in tools/sched_ext/include/scx/user_exit_info.h.
"""

import pytest

from guest.scx.exit_parse import (
    EXIT_KINDS,
    KmsgExitParser,
    SchedExit,
    Task,
    combine,
    extract_debug_dump,
    kind_of,
    parse_exit_line,
    parse_kmsg_line,
    parse_stall,
    strip_kmsg_prefix,
    trace_dump_lines,
)

# qmap -e: scx_bpf_error() from ops.enqueue, as dmesg prints it.
DMESG_BPF_ERROR = """\
[   14.201337] sched_ext: BPF scheduler "qmap" enabled
[   15.000001] random: crng init done
[   19.734512] sched_ext: BPF scheduler "qmap" disabled (scx_bpf_error)
[   19.734530] sched_ext: qmap: test triggering error
[   19.734541]    scx_bpf_error_bstr+0x6d/0x90
[   19.734548]    bpf_prog_1a2b3c4d5e6f7a8b_qmap_enqueue+0x3a1/0x3b8
[   19.734552]    bpf__sched_ext_ops_enqueue+0x4b/0x70
[   19.734555]    enqueue_task_scx+0x1c1/0x2f0
[   19.734601] EXT4-fs (vda): mounted filesystem
"""

# qmap -t 10: a user task never dispatched, the watchdog fires after qmap's 5 s timeout.
DMESG_STALL = """\
[   26.102000] sched_ext: BPF scheduler "qmap" enabled
[   31.004114] sched_ext: BPF scheduler "qmap" disabled (runnable task stall)
[   31.004130] sched_ext: qmap: python3[187] failed to run for 5.136s
[   31.004139]    scx_watchdog_workfn+0x154/0x1f0
[   31.004144]    process_one_work+0x176/0x330
[   31.004147]    worker_thread+0x252/0x390
"""

# The same error read from /dev/kmsg: records "prio,seq,usec,flags;text" plus dict lines.
KMSG_RECORDS = [
    '6,1040,14201337,-;sched_ext: BPF scheduler "qmap" enabled',
    '3,1041,19734512,-;sched_ext: BPF scheduler "qmap" disabled (scx_bpf_error)',
    "3,1042,19734530,-;sched_ext: qmap: test triggering error",
    "4,1043,19734541,c;   scx_bpf_error_bstr+0x6d/0x90",
]

QMAP_STDERR = """\
stats  : enq=12 dsp=9 delta=3 reenq=0 deq=0 core=0 enq_ddsp=0
stats  : enq=40 dsp=38 delta=2 reenq=0 deq=1 core=0 enq_ddsp=0

DEBUG DUMP
================================================================================

qmap: root
kworker/u8:3[61] triggered exit kind 1025 on CPU 1:
  scx_bpf_error (test triggering error)

Backtrace:
  scx_bpf_error_bstr+0x6d/0x90
  bpf_prog_1a2b3c4d5e6f7a8b_qmap_enqueue+0x3a1/0x3b8

QMAP FIFO[0]:
QMAP FIFO[1]: 187

CPU states
----------

CPU 1   : nr_run=2 flags=0x1 cpu_rel=0 ops_qseq=41 ksync=118
          curr=kworker/u8:3[61] class=ext_sched_class

Event counters
--------------
                  SCX_EV_SELECT_CPU_FALLBACK:                0
                  SCX_EV_SUB_BYPASS_DISPATCH:                0

================================================================================

EXIT: scx_bpf_error (test triggering error)
"""

TRACE_PIPE = """\
# tracer: nop
          python3-1       [000] d..1.    61.204511: sched_ext_dump: qmap: root
          python3-1       [000] d..1.    61.204519: sched_ext_dump: Debug dump triggered by SysRq-D
          python3-1       [000] d..1.    61.204520: sched_ext_dump:
          python3-1       [000] d..1.    61.204522: sched_ext_dump: CPU states
          python3-1       [000] d..1.    61.204530: sched_ext_dump: CPU 0   : nr_run=1 flags=0x1 cpu_rel=0 ops_qseq=3 ksync=7
           <idle>-0       [001] d.h2.    61.204540: sched_switch: prev_comm=swapper/1
"""


def test_kinds_table_matches_the_7_2_reasons():
    assert EXIT_KINDS[1025] == ("ERROR_BPF", "scx_bpf_error")
    assert EXIT_KINDS[1026] == ("ERROR_STALL", "runnable task stall")
    assert EXIT_KINDS[64] == ("UNREG", "unregistered from user space")
    assert kind_of("disabled by sysrq-S") == ("SYSRQ", 67)
    assert kind_of("parent exiting") == ("PARENT", 68)
    assert kind_of("Scheduler unregistered from user space") == ("UNREG", 64)  # before 6.12
    assert kind_of("no such reason") == ("", -1)


@pytest.mark.parametrize(
    "line,want",
    [
        ("EXIT: scx_bpf_error (test triggering error)", ("scx_bpf_error", "test triggering error")),
        ("EXIT: unregistered from user space\n", ("unregistered from user space", "")),
        (
            "EXIT: runtime error (ops.init() failed (-22))",
            ("runtime error", "ops.init() failed (-22)"),
        ),
        (
            "EXIT: runnable task stall (kworker/0:1[42] failed to run for 5.012s)",
            ("runnable task stall", "kworker/0:1[42] failed to run for 5.012s"),
        ),
        ("EXIT: something new (a (b) c)", ("something new", "a (b) c")),
        ("EXIT: bare words", ("bare words", "")),
        ("EXITING now", None),
        ("stats  : EXIT: x", None),
    ],
)
def test_parse_exit_line(line, want):
    assert parse_exit_line(line) == want


@pytest.mark.parametrize(
    "msg,want",
    [
        ("python3[187] failed to run for 5.136s", (Task("python3", 187), 5.136)),
        ("kworker/u8:3[61] failed to run for 30.000s", (Task("kworker/u8:3", 61), 30.0)),
        ("my [odd] task[77] failed to run for 7.001s", (Task("my [odd] task", 77), 7.001)),
        ("sched_ext: qmap: cat[9] failed to run for 5.000s", (Task("cat", 9), 5.0)),
        ("watchdog failed to check in for 3.500s", (None, 3.5)),
        ("name[pid] failed to run for 1.000s", (None, 1.0)),
        ("x[1] failed to run for soon", None),
        ("test triggering error", None),
    ],
)
def test_parse_stall(msg, want):
    assert parse_stall(msg) == want


@pytest.mark.parametrize(
    "raw,text",
    [
        ("[   19.734530] sched_ext: qmap: boom", "sched_ext: qmap: boom"),
        ("[   19.734530][  T123] sched_ext: qmap: boom", "sched_ext: qmap: boom"),
        ("3,1042,19734530,-;sched_ext: qmap: boom", "sched_ext: qmap: boom"),
        ("<3>sched_ext: qmap: boom", "sched_ext: qmap: boom"),
        ("[   19.7]    scx_bpf_error_bstr+0x6d/0x90", "   scx_bpf_error_bstr+0x6d/0x90"),
        ("[not a stamp] text", "[not a stamp] text"),
    ],
)
def test_strip_kmsg_prefix(raw, text):
    assert strip_kmsg_prefix(raw) == text


def test_parse_kmsg_line_kinds():
    assert parse_kmsg_line('[ 1.0] sched_ext: BPF scheduler "simple" enabled') == (
        "enabled", "simple", "", False,
    )  # fmt: skip
    assert parse_kmsg_line('sched_ext: BPF scheduler "qmap" enabled (partial)').text == "partial"
    sub = parse_kmsg_line('sched_ext: BPF sub-scheduler "child" disabled (parent exiting)')
    assert sub == ("disabled", "child", "parent exiting", True)
    assert parse_kmsg_line("sched_ext: ops error detected without ops (boom)") == (
        "no_ops", "", "boom", False,
    )  # fmt: skip
    assert parse_kmsg_line("sched_ext: qmap: test triggering error").what == "message"
    assert parse_kmsg_line("   process_one_work+0x176/0x330").what == "backtrace"
    assert parse_kmsg_line("EXT4-fs (vda): mounted filesystem") is None
    assert parse_kmsg_line("   indented prose") is None


def test_scx_bpf_error_from_dmesg():
    p = KmsgExitParser()
    p.feed_text(DMESG_BPF_ERROR)
    assert p.complete and p.enabled_ops == "qmap"
    e = p.result()
    assert (e.kind, e.code, e.reason, e.message, e.ops) == (
        "ERROR_BPF", 1025, "scx_bpf_error", "test triggering error", "qmap",
    )  # fmt: skip
    assert e.error and e.task is None and e.source == "kmsg"
    assert e.backtrace[0] == "scx_bpf_error_bstr+0x6d/0x90" and len(e.backtrace) == 4
    assert e.headline() == "scx_bpf_error: test triggering error"


def test_stall_names_the_task_and_duration():
    p = KmsgExitParser("qmap")
    p.feed_text(DMESG_STALL)
    e = p.result()
    assert e.kind == "ERROR_STALL"
    assert e.task == Task("python3", 187) and e.stall_s == 5.136
    assert e.backtrace[0].startswith("scx_watchdog_workfn+")


def test_raw_kmsg_records():
    p = KmsgExitParser()
    for rec in KMSG_RECORDS:
        p.feed(rec)
    e = p.result()
    assert (e.kind, e.message, e.backtrace) == (
        "ERROR_BPF", "test triggering error", ("scx_bpf_error_bstr+0x6d/0x90",),
    )  # fmt: skip


def test_clean_unregistration_is_complete_without_a_message():
    p = KmsgExitParser("simple")
    assert not p.complete and p.result() is None
    p.feed('[   40.1] sched_ext: BPF scheduler "simple" disabled (unregistered from user space)')
    assert p.complete
    e = p.result()
    assert (e.kind, e.error, e.message) == ("UNREG", False, "")


def test_error_kind_waits_for_its_message():
    p = KmsgExitParser()
    p.feed('sched_ext: BPF scheduler "qmap" disabled (runnable task stall)')
    assert not p.complete and p.result().message == ""
    p.feed("sched_ext: qmap: cat[9] failed to run for 5.000s")
    assert p.complete


def test_parser_follows_its_ops_and_restarts_on_a_new_load():
    p = KmsgExitParser("qmap")
    p.feed('sched_ext: BPF scheduler "other" disabled (scx_bpf_error)')
    p.feed("sched_ext: other: not ours")
    assert p.result() is None
    p.feed('sched_ext: BPF scheduler "qmap" disabled (scx_bpf_error)')
    p.feed("sched_ext: unrelated: a message of another ops")
    p.feed("sched_ext: qmap: first")
    p.feed('sched_ext: BPF scheduler "qmap" disabled (runnable task stall)')  # later: ignored
    assert p.result().message == "first"
    p.feed('sched_ext: BPF scheduler "qmap" enabled')
    assert p.result() is None
    p.feed('sched_ext: BPF scheduler "qmap" disabled (unregistered from user space)')
    assert p.result().kind == "UNREG"


def test_backtrace_frames_only_follow_the_message():
    p = KmsgExitParser()
    p.feed("   stray_frame+0x1/0x2")
    p.feed('sched_ext: BPF scheduler "q" disabled (scx_bpf_error)')
    p.feed("   before_message+0x1/0x2")
    p.feed("sched_ext: q: boom")
    for i in range(100):
        p.feed(f"   frame{i}+0x1/0x2 [mod]")
    bt = p.result().backtrace
    assert bt[0] == "frame0+0x1/0x2 [mod]" and len(bt) == 64


def test_no_ops_error():
    p = KmsgExitParser()
    p.feed("sched_ext: ops error detected without ops (ops.init() failed)")
    e = p.result()
    assert e.kind == "ERROR" and e.message == "ops.init() failed"


def test_combine_sources():
    p = KmsgExitParser()
    p.feed_text(DMESG_BPF_ERROR)
    kernel = p.result()
    both = combine(kernel, ("scx_bpf_error", "test triggering error"))
    assert both.source == "kmsg+stderr" and both.backtrace == kernel.backtrace
    only_line = combine(None, ("runnable task stall", "cat[9] failed to run for 5.000s"), "qmap")
    assert (only_line.kind, only_line.ops, only_line.task, only_line.source) == (
        "ERROR_STALL", "qmap", Task("cat", 9), "stderr",
    )  # fmt: skip
    p2 = KmsgExitParser()
    p2.feed('sched_ext: BPF scheduler "qmap" disabled (scx_bpf_error)')
    filled = combine(p2.result(), ("scx_bpf_error", "test triggering error"))
    assert filled.message == "test triggering error" and filled.source == "kmsg+stderr"
    disagree = combine(kernel, ("unregistered from user space", ""))
    assert disagree == kernel
    assert combine(None, None) is None


def test_from_map_round_trip_and_hostile_input():
    p = KmsgExitParser()
    p.feed_text(DMESG_STALL)
    e = combine(p.result(), None)
    assert SchedExit.from_map(e.as_map()) == e
    junk = SchedExit.from_map(
        {
            "kind": 7,
            "code": True,
            "reason": "x" * 100_000,
            "task": {"comm": "a", "pid": "1"},
            "stall_s": "5",
            "backtrace": ["f"] * 1000 + [3],
        }
    )
    assert (junk.kind, junk.code, junk.task, junk.stall_s) == ("", -1, None, None)
    assert len(junk.reason) == 256 and len(junk.backtrace) == 64
    assert SchedExit.from_map(None) == SchedExit()


def test_debug_dump_block_from_stderr():
    dump = extract_debug_dump(QMAP_STDERR)
    assert dump.startswith("qmap: root\nkworker/u8:3[61] triggered exit kind 1025 on CPU 1:")
    assert dump.endswith("SCX_EV_SUB_BYPASS_DISPATCH:                0")
    assert "EXIT:" not in dump and "=====" not in dump
    assert extract_debug_dump("stats : enq=1\nEXIT: unregistered from user space\n") == ""
    cut = QMAP_STDERR[: QMAP_STDERR.index("CPU states")]
    assert extract_debug_dump(cut).endswith("QMAP FIFO[1]: 187")
    assert extract_debug_dump("xDEBUG DUMP\n" + "=" * 80 + "\n\nbody\n") == ""


def test_trace_dump_lines():
    assert trace_dump_lines(TRACE_PIPE) == [
        "qmap: root",
        "Debug dump triggered by SysRq-D",
        "",
        "CPU states",
        "CPU 0   : nr_run=1 flags=0x1 cpu_rel=0 ops_qseq=3 ksync=7",
    ]
