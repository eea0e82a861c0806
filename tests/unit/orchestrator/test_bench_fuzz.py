"""``schedlab bench fuzz`` runs the collector fuzzer in its own process and prints its figures."""

from __future__ import annotations

from click.testing import CliRunner

from orchestrator.bench import bench_group


def test_bench_fuzz_prints_inputs_per_second() -> None:
    res = CliRunner().invoke(bench_group, ["fuzz", "--inputs", "400", "--seed", "5"])
    assert res.exit_code == 0, res.output
    assert (
        '"crashes": 0' in res.output and "400 inputs in" in res.output and "inputs/s" in res.output
    )


def test_bench_fuzz_rejects_a_bad_count() -> None:
    res = CliRunner().invoke(bench_group, ["fuzz", "--inputs", "0"])
    assert res.exit_code == 2 and "--inputs" in res.output
