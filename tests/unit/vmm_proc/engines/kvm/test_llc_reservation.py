"""llc_reservation: whole LLCs locked exclusively, CPUs handed out, locks released."""

import pytest

from vmm_proc.engines.kvm.llc_reservation import ReservationRefused, reserve

LLCS = [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_one_llc_that_fits_is_enough(tmp_path):
    r = reserve(3, LLCS, tmp_path)
    assert (r.service, r.vcpus, r.llcs) == (0, [1, 2, 3], [[0, 1, 2, 3]])
    r.release()


def test_two_runs_get_different_llcs_and_a_third_is_refused(tmp_path):
    a = reserve(2, LLCS, tmp_path)
    b = reserve(2, LLCS, tmp_path)
    assert a.llcs != b.llcs
    with pytest.raises(ReservationRefused, match="held by other performance runs"):
        reserve(2, LLCS, tmp_path)
    a.release()
    c = reserve(2, LLCS, tmp_path)
    assert c.llcs == a.llcs
    b.release()
    c.release()


def test_a_big_guest_spans_llcs(tmp_path):
    r = reserve(6, LLCS, tmp_path)
    assert r.service == 0 and r.vcpus == [1, 2, 3, 4, 5, 6] and len(r.llcs) == 2
    r.release()
    r.release()  # idempotent
