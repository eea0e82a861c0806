import struct

import pytest

from monitor_proc.helpers.sched import cpu_curr, cpu_rq, rq_sample, task_comm, task_pid
from monitor_proc.program import BadDataError


def test_rq_sample_reads_every_present_field(synthetic_guest):
    g = synthetic_guest(levels=5, ncpus=2)
    prog = g.program()
    assert cpu_rq(prog, 1) == g.rq_va[1]
    assert rq_sample(prog, 0) == {
        "nr_running": 1,
        "rq_clock": 1000,
        "nr_switches": 50,
        "cfs_h_nr_queued": 1,
        "scx_nr_running": 0,
        "curr_pid": 100,
        "curr_comm": "task0",
    }
    assert rq_sample(prog, 1)["rq_clock"] == 2000
    task = cpu_curr(prog, 1)
    assert (task_pid(prog, task), task_comm(prog, task)) == (101, "task1")


def test_older_member_names_and_missing_sched_ext(synthetic_guest):
    prog = synthetic_guest(scx=False, h_nr_name="h_nr_running").program()
    s = rq_sample(prog, 1)
    assert s["cfs_h_nr_queued"] == 2
    assert "scx_nr_running" not in s


def test_rq_of_another_cpu_is_detected(synthetic_guest):
    g = synthetic_guest()
    g.write_va(g.rq_va[1] + 32, struct.pack("<i", 0))  # rq->cpu says 0
    with pytest.raises(BadDataError, match="says cpu 0"):
        rq_sample(g.program(), 1)


def test_idle_rq_without_curr(synthetic_guest):
    g = synthetic_guest()
    g.write_u64(g.rq_va[0] + 8, 0)
    s = rq_sample(g.program(), 0)
    assert "curr_pid" not in s and s["nr_running"] == 1
