from pathlib import Path

from orchestrator.testbed.run import l1_oops


def test_l1_oops_finds_the_first_oops_line(tmp_path: Path) -> None:
    log = tmp_path / "l1.log"
    log.write_bytes(
        b"[    1.0] booting\n[   13.2] Oops: int3: 0000 [#1] PREEMPT SMP NOPTI\n[ 13.3] RIP: x\n"
    )
    assert l1_oops(log) == "[   13.2] Oops: int3: 0000 [#1] PREEMPT SMP NOPTI"
    log.write_bytes(b"[    1.0] all well\n")
    assert l1_oops(log) is None
    assert l1_oops(tmp_path / "missing.log") is None
