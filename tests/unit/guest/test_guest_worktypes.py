"""guest/worktypes.py: the work types' own loops, with fake clocks."""

from guest.worktypes import spin


def test_spin_counts_units_and_gaps_with_fake_clock():
    ticks = iter([0, 10, 25, 100, 130])
    res = spin(120, clock=lambda: next(ticks), unit_iters=1)
    assert (res.work_units, res.max_gap_ns, res.max_gap_at) == (4, 75, 25)
    assert res.cpus == ()


def test_spin_stops_on_request():
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 3  # checked before each unit: 3 units, then stop

    res = spin(10**12, stop=stop, unit_iters=1)
    assert res.work_units == 3


def test_spin_notes_the_cpus_it_ran_on():
    cpus = iter([3, 1, 3])
    res = spin(
        10**12,
        stop=iter([False, False, False, True]).__next__,
        unit_iters=1,
        cpu=lambda: next(cpus),
    )
    assert res.cpus == (1, 3)
