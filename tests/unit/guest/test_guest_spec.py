import doctest

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guest import spec as spec_mod
from guest.spec import RunSpec, SpecError, parse_cmdline, to_cmdline

BASE = "console=ttyS0 quiet schedlab.scenario=cgroup-spinners"


def test_defaults_and_other_words_ignored():
    s = parse_cmdline(BASE + " nokaslr panic=-1 foo.bar=1")
    assert s == RunSpec("cgroup-spinners", 2.0, 2, 2, 0.35, 0.0)


def test_all_keys():
    s = parse_cmdline(
        BASE + " schedlab.duration=0.5 schedlab.cgroups=3 schedlab.workers=4"
        " schedlab.fairness=0.1 schedlab.max_gap_ms=250"
    )
    assert (s.duration, s.cgroups, s.workers, s.fairness, s.max_gap_ms) == (0.5, 3, 4, 0.1, 250.0)


def test_words_after_double_dash_are_not_parsed():
    assert parse_cmdline(BASE + " -- schedlab.bogus=1").workers == 2


@pytest.mark.parametrize(
    "extra,key",
    [
        ("schedlab.bogus=1", "schedlab.bogus"),
        ("schedlab.workers", "schedlab.workers"),
        ("schedlab.workers=", "schedlab.workers"),
        ("schedlab.workers=2 schedlab.workers=3", "schedlab.workers"),
        ("schedlab.workers=two", "schedlab.workers"),
        ("schedlab.workers=+2", "schedlab.workers"),
        ("schedlab.workers=0", "schedlab.workers"),
        ("schedlab.workers=257", "schedlab.workers"),
        ("schedlab.workers=17 schedlab.cgroups=64", "schedlab.workers"),
        ("schedlab.cgroups=-1", "schedlab.cgroups"),
        ("schedlab.cgroups=1.5", "schedlab.cgroups"),
        ("schedlab.duration=0", "schedlab.duration"),
        ("schedlab.duration=nan", "schedlab.duration"),
        ("schedlab.duration=inf", "schedlab.duration"),
        ("schedlab.duration=1_0", "schedlab.duration"),
        ("schedlab.duration=abc", "schedlab.duration"),
        ("schedlab.fairness=1.5", "schedlab.fairness"),
        ("schedlab.fairness=-0.1", "schedlab.fairness"),
        ("schedlab.max_gap_ms=-1", "schedlab.max_gap_ms"),
        ("schedlab.scenario=other", "schedlab.scenario"),
    ],
)
def test_bad_values_name_the_key(extra, key):
    with pytest.raises(SpecError) as e:
        parse_cmdline(BASE + " " + extra)
    assert e.value.key == key
    assert key in str(e.value)


def test_scenario_is_required():
    with pytest.raises(SpecError) as e:
        parse_cmdline("console=ttyS0 schedlab.workers=2")
    assert e.value.key == spec_mod.KEY_SCENARIO


@settings(deadline=None)
@given(
    duration=st.floats(min_value=1e-6, max_value=3600),
    cgroups=st.integers(1, 4),
    workers=st.integers(1, 256),
    fairness=st.floats(0, 1),
    gap=st.floats(0, 3_600_000),
)
def test_to_cmdline_round_trips(duration, cgroups, workers, fairness, gap):
    s = RunSpec("cgroup-spinners", duration, cgroups, workers, fairness, gap)
    words = to_cmdline(s)
    assert all(w.startswith(spec_mod.PREFIX) and " " not in w for w in words)
    assert parse_cmdline("ro " + " ".join(words)) == s


def test_doctest():
    assert doctest.testmod(spec_mod).failed == 0


def test_replace_validates():
    s = parse_cmdline(BASE)
    assert s._replace(workers=9).workers == 9
    with pytest.raises(SpecError):
        s._replace(workers=0)
