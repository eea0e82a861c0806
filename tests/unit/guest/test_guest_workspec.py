"""guest.workspec: the one table of work types, their parameters and groups."""

from __future__ import annotations

import pytest

from guest import workspec
from guest.scenario.work import WORK_TYPES, check_work, group_size
from guest.spec import SpecError

KTSTR_20 = (
    "spin",
    "yield_heavy",
    "mixed",
    "io_sync",
    "bursty",
    "pipe_io",
    "futex_ping_pong",
    "cache_pressure",
    "cache_yield",
    "cache_pipe",
    "futex_fan_out",
    "fan_out_compute",
    "sequence",
    "fork_exit",
    "nice_sweep",
    "affinity_churn",
    "policy_churn",
    "page_fault_churn",
    "mutex_contention",
    "custom",
)


def test_ktstr_s_twenty_types_and_the_payload_are_in_the_table() -> None:
    assert set(KTSTR_20) | {"payload"} == set(workspec.TABLE)


def test_the_scenario_contract_checks_against_the_same_table() -> None:
    assert set(workspec.TABLE) <= set(WORK_TYPES)
    for name in set(workspec.TABLE) - {"custom"}:  # custom needs a callable or a command
        assert check_work(name, {}, "w") == (name, workspec.defaults(name))


def test_ktstr_defaults() -> None:
    assert workspec.defaults("bursty") == {"burst_ms": 50.0, "sleep_ms": 100.0}
    assert workspec.defaults("io_sync") == {"bytes": 65536, "sleep_us": 100}
    assert workspec.defaults("cache_pressure") == {"size_kb": 32, "stride": 64}
    assert workspec.defaults("fan_out_compute") == {
        "fan_out": 4,
        "cache_kb": 256,
        "ops": 5,
        "sleep_us": 100,
    }
    assert workspec.defaults("page_fault_churn") == {"region_kb": 4096, "touches": 256, "spins": 64}
    assert workspec.defaults("mutex_contention") == {
        "contenders": 4,
        "hold_iters": 256,
        "work_iters": 1024,
    }


@pytest.mark.parametrize(
    ("name", "params", "size"),
    [
        ("spin", {}, 1),
        ("pipe_io", {}, 2),
        ("futex_ping_pong", {}, 2),
        ("cache_pipe", {}, 2),
        ("futex_fan_out", {}, 5),
        ("futex_fan_out", {"fan_out": 2}, 3),
        ("fan_out_compute", {"fan_out": 7}, 8),
        ("mutex_contention", {}, 4),
        ("mutex_contention", {"contenders": 8}, 8),
    ],
)
def test_group_sizes(name: str, params: dict, size: int) -> None:
    assert workspec.group_size(name, params) == size
    assert group_size(name, check_work(name, params, "w")[1]) == size


def test_with_defaults_keeps_given_values_and_drops_unknown_ones() -> None:
    assert workspec.with_defaults("spin", {"unit_iters": 7, "bogus": 1}) == {"unit_iters": 7}


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("spin", "want kind:ms"),
        ("dance:10", "want kind:ms"),
        ("spin:x", "not a number"),
        ("spin:0", "outside"),
        ("spin:70000", "outside"),
        (",".join(["io:1"] * 33), "1..32"),
    ],
)
def test_bad_sequence_phases(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        workspec.parse_phases(text)
    with pytest.raises(SpecError, match=why):
        check_work("sequence", {"phases": text}, "cg.work")


def test_phases_parse() -> None:
    assert workspec.parse_phases("spin:10, sleep:2.5,io:1") == [
        ("spin", 10.0),
        ("sleep", 2.5),
        ("io", 1.0),
    ]


@pytest.mark.parametrize(
    ("params", "why"),
    [
        ({}, "exactly one"),
        ({"callable": "m:f", "command": "true"}, "exactly one"),
        ({"callable": "nofunction"}, "module:function"),
    ],
)
def test_custom_needs_one_callable_or_command(params: dict, why: str) -> None:
    with pytest.raises(SpecError, match=why):
        check_work("custom", params, "cg.work")


def test_bad_parameters_name_their_field() -> None:
    with pytest.raises(SpecError, match=r"w.params.fan_out.*outside"):
        check_work("futex_fan_out", {"fan_out": 40}, "w")
    with pytest.raises(SpecError, match=r"w.params.metrics"):
        check_work("payload", {"metrics": "yaml"}, "w")
