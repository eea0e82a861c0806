"""guest/scx/verifier_log.py: verifier loop dumps collapsed, the rest left alone.

The logs are shaped like libbpf 1.x prints a rejected program: ``-- BEGIN PROG LOAD LOG --``,
instruction lines ``N: (op) insn  ; register state``, source comments ``; ... @ file:line``,
branch-state lines ``from N to M: ...``, and libbpf's lines after the log.
"""

from guest.scx.verifier_log import collapse_loops, normalize, summarize

PREFIX = [
    "libbpf: prog 'qmap_dispatch': BPF program load failed: Permission denied",
    "libbpf: prog 'qmap_dispatch': -- BEGIN PROG LOAD LOG --",
    "0: R1=ctx() R10=fp0",
    "; void BPF_STRUCT_OPS(qmap_dispatch, s32 cpu, struct task_struct *prev) @ scx_qmap.bpf.c:312",
    "0: (bf) r6 = r1                       ; R1=ctx() R6_w=ctx()",
]
SUFFIX = [
    "18: (79) r3 = *(u64 *)(r2 +0)",
    "R2 invalid mem access 'scalar'",
    "processed 1234 insns (limit 1000000) max_states_per_insn 4 total_states 80 peak_states 80 mark_read 5",
    "-- END PROG LOAD LOG --",
    "libbpf: prog 'qmap_dispatch': failed to load: -13",
    "libbpf: failed to load object 'scx_qmap'",
    "libbpf: failed to load BPF skeleton 'scx_qmap': -13",
    "[SCX_BUG] scx_qmap.c:109 (Permission denied)",
    "Failed to load skel",
]


def loop_iteration(i, base=12):
    """One walk of a bounded loop; unrolled copies get other instruction indices."""
    return [
        "; for (i = 0; i < 40; i++) { @ scx_qmap.bpf.c:330",
        f"{base}: (bf) r1 = r7                      ; R1_w=scalar(id={i + 3},smin=0,smax={i}) R7=scalar(id={i + 3})",
        f"{base + 1}: (67) r1 <<= 3                     ; R1_w=scalar(smin=0,smax={8 * i})",
        f"{base + 2}: (0f) r2 += r1",
        f"{base + 3}: (07) r7 += 1                      ; R7_w=scalar(smin=1,smax={i + 1})",
        f"{base + 4}: (ad) if r7 < r8 goto pc-5 {base + 5}: R7_w={i + 1} R8=40",
        f"from {base + 4} to {base}: R1_w=scalar() R7_w={i + 1}",
    ]


def test_normalize_drops_what_changes_per_iteration():
    a = normalize("12: (bf) r1 = r7                      ; R1_w=scalar(id=3,smin=0,smax=0)")
    b = normalize("40: (bf) r1 = r7  ; R1_w=scalar(id=9,smin=0,smax=7)")
    assert a == b == "(bf) r1 = r7"
    assert (
        normalize("16: (ad) if r7 < r8 goto pc-5 17: R7_w=1 R8=40") == "(ad) if r7 < r8 goto pc-5"
    )
    assert normalize("3041: frame1: R0_w=scalar()") == normalize("7: R0=1 R6=ctx()") == "<state>"
    assert normalize("from 16 to 12: R1_w=scalar()") == "<state>"
    assert (
        normalize("9: (15) if r7 == 0x0 goto pc+1  ; frame1: R7=0") == "(15) if r7 == 0x0 goto pc+1"
    )
    assert normalize("; x = 1; R is not a register here") == "; x = 1; R is not a register here"
    assert normalize("  libbpf: failed  ") == "libbpf: failed"


def test_loop_collapses_to_first_and_last_iteration():
    body = [ln for i in range(40) for ln in loop_iteration(i)]
    out = collapse_loops(PREFIX + body + SUFFIX)
    assert out[: len(PREFIX)] == PREFIX and out[-len(SUFFIX) :] == SUFFIX
    mid = out[len(PREFIX) : -len(SUFFIX)]
    assert mid[0] == "--- loop: the next 7 lines repeat 40 times ---"
    assert mid[1:8] == loop_iteration(0)
    assert mid[8] == "--- 38 identical iterations omitted; the last one: ---"
    assert mid[9:16] == loop_iteration(39)
    assert mid[16:] == ["--- end of loop ---"]


def test_unrolled_loop_with_moving_indices_collapses():
    body = [ln for i in range(10) for ln in loop_iteration(i, base=12 + 6 * i)]
    out = collapse_loops(body)
    assert out[0] == "--- loop: the next 7 lines repeat 10 times ---"
    assert len(out) == 7 * 2 + 3


def test_nested_loops_take_another_pass():
    inner = ["; inner @ f.c:2", "5: (07) r1 += 1  ; R1_w=1", "6: (ad) if r1 < r2 goto pc-2"]
    outer_iter = ["; outer @ f.c:1", "4: (b7) r1 = 0"] + inner * 4 + ["7: (07) r3 += 1  ; R3_w=1"]
    out = collapse_loops(outer_iter * 5)
    assert out[0].startswith("--- loop: the next") and "repeat 5 times" in out[0]
    assert len(out) < len(outer_iter * 5) // 2


def test_output_without_repeats_is_unchanged():
    lines = PREFIX + SUFFIX + ["libbpf: map 'stats': created", "libbpf: map 'stats': created"]
    assert collapse_loops(lines) == lines
    twice = [ln for i in range(2) for ln in loop_iteration(i)]
    assert collapse_loops(twice) == twice  # two copies are not a loop worth cutting
    assert collapse_loops([]) == []


def test_one_line_repeated_collapses():
    out = collapse_loops(["start"] + ["libbpf: retrying"] * 20 + ["end"])
    assert out == [
        "start",
        "--- loop: the next 1 lines repeat 20 times ---",
        "libbpf: retrying",
        "--- 18 identical iterations omitted; the last one: ---",
        "libbpf: retrying",
        "--- end of loop ---",
        "end",
    ]


def test_summarize_keeps_head_and_tail():
    body = [ln for i in range(40) for ln in loop_iteration(i)]
    text = "\n".join(PREFIX + body + SUFFIX) + "\n\n"
    short = summarize(text)
    assert short.startswith(PREFIX[0]) and short.endswith("Failed to load skel")
    assert "repeat 40 times" in short and len(short.splitlines()) < 40
    many = "\n".join(f"line {i}" for i in range(500))
    cut = summarize(many, max_lines=30)
    lines = cut.splitlines()
    assert lines[0] == "line 0" and lines[-1] == "line 499" and len(lines) == 30
    assert any(ln.startswith("[... ") and "lines left out" in ln for ln in lines)
    wide = summarize("x" * 5000 + "\nend")
    assert wide.splitlines()[0].endswith(" [...]") and len(wide) < 600
    assert summarize("") == ""
