"""guest/spec.py: the cgroup-spinners parameters, validated with errors naming the document field."""

import doctest
import math

import pytest

from guest import spec as spec_mod
from guest.spec import RunSpec, SpecError


def test_defaults():
    assert RunSpec("cgroup-spinners") == RunSpec("cgroup-spinners", 2.0, 2, 2, 0.35, 0.0, 0, "")


@pytest.mark.parametrize(
    "change,key",
    [
        ({"scenario": "other"}, "scenario.kind"),
        ({"workers": 0}, "scenario.workers"),
        ({"workers": 257}, "scenario.workers"),
        ({"workers": 2.0}, "scenario.workers"),
        ({"workers": True}, "scenario.workers"),
        ({"workers": 17, "cgroups": 64}, "scenario.workers"),
        ({"cgroups": -1}, "scenario.cgroups"),
        ({"cgroups": "3"}, "scenario.cgroups"),
        ({"duration": 0}, "scenario.duration"),
        ({"duration": math.nan}, "scenario.duration"),
        ({"duration": math.inf}, "scenario.duration"),
        ({"duration": "1"}, "scenario.duration"),
        ({"fairness": 1.5}, "verdict.fairness"),
        ({"fairness": -0.1}, "verdict.fairness"),
        ({"max_gap_ms": -1}, "verdict.max_gap_ms"),
        ({"wire_noise": 101}, "hooks.wire_noise"),
        ({"crash": "reboot"}, "hooks.crash"),
        ({"crash": ["init"]}, "hooks.crash"),
    ],
)
def test_bad_values_name_the_document_field(change, key):
    with pytest.raises(SpecError) as e:
        RunSpec("cgroup-spinners")._replace(**change)
    assert e.value.key == key and str(e.value).startswith(key + ": ")


def test_replace_validates_and_as_dict():
    s = RunSpec("cgroup-spinners")._replace(workers=3, fairness=1)
    assert s.as_dict()["workers"] == 3 and s.as_dict()["fairness"] == 1


def test_doctest():
    assert doctest.testmod(spec_mod).failed == 0
