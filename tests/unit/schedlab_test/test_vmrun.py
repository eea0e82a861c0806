from pathlib import Path

import pytest

from schedlab_test.spec import SpecError, spec_of
from schedlab_test.vmrun import RunOutcome, cli_argv, evidence_text


def test_argv_carries_the_whole_shape(tmp_path: Path) -> None:
    spec = spec_of(
        dict(
            topology="smt-2llc",
            scheduler="scx_qmap",
            flags=["batch"],
            sched_args="-v",
            duration=3,
            workers=4,
            memory=768,
            watchdog_timeout=5,
            asserts={"fairness": 0.5, "max_gap_ms": 2000, "max_imbalance_ratio": 8},
        )
    )
    argv = cli_argv(spec, tmp_path / "plan.json", tmp_path / "r.json", "7.2", "qemu")
    pairs = {argv[i]: argv[i + 1] for i in range(len(argv) - 1) if argv[i].startswith("--")}
    assert pairs["--topology"] == "smt-2llc" and pairs["--duration"] == "3"
    assert pairs["--workers"] == "4" and pairs["--mem"] == "768" and pairs["--kernel"] == "7.2"
    assert pairs["--scheduler"] == "scx_qmap" and pairs["--sched-flag"] == "batch"
    assert pairs["--sched-args"] == "-v" and pairs["--watchdog-timeout"] == "5"
    assert pairs["--fairness"] == "0.5" and pairs["--max-gap-ms"] == "2000"
    assert pairs["--threshold"] == "max_imbalance_ratio=8"
    assert pairs["--plan"].endswith("plan.json") and pairs["--engine"] == "qemu"


def test_eevdf_passes_no_scheduler_options(tmp_path: Path) -> None:
    argv = cli_argv(spec_of({}), None, tmp_path / "r.json", None, "auto")
    assert "--scheduler" not in argv and "--plan" not in argv and "--kernel" not in argv


def test_evidence_names_reasons_failed_checks_and_where(tmp_path: Path) -> None:
    doc = {
        "verdict": "failed",
        "reasons": ["guest verdict: fairness: spread > 0.35: cg_0 spread 0.9"],
        "run_dir": "/runs/x",
        "guest": {"result": {"verdicts": [{"name": "fairness", "passed": False, "detail": "d"}]}},
        "evidence": {"oops": ["BUG: soft lockup"]},
    }
    text = evidence_text(RunOutcome(1, doc, 1.0, tmp_path / "run.log"))
    assert "schedlab verdict: failed (exit 1)" in text and "cg_0 spread 0.9" in text
    assert "check fairness: d" in text and "oops: BUG: soft lockup" in text
    assert "run dir: /runs/x" in text


def test_a_refused_run_is_its_last_line(tmp_path: Path) -> None:
    o = RunOutcome(2, None, 0.3, tmp_path / "run.log", ["schedlab: --scheduler nope: unknown"])
    assert o.verdict == "error" and o.reasons == ["--scheduler nope: unknown"]


@pytest.mark.parametrize(
    ("kw", "says"),
    [
        ({"duration": 0}, "duration"),
        ({"workers": 0}, "workers"),
        ({"expect_error": "("}, "expect_error"),
        ({"asserts": {"fairness": "x"}}, "asserts"),
        ({"min_cpus": 4, "max_cpus": 2}, "max_cpus"),
        ({"flags": 3}, "flags"),
    ],
)
def test_bad_keywords_name_the_field(kw: dict, says: str) -> None:
    with pytest.raises(SpecError, match=says):
        spec_of(kw)
