import pytest

from monitor_proc.helpers.list import list_for_each
from monitor_proc.helpers.pid import for_each_task
from monitor_proc.helpers.sched import task_cpu, task_sample, task_state_to_char
from monitor_proc.program import BadDataError


def test_for_each_task_walks_the_task_list(synthetic_guest):
    g = synthetic_guest(ncpus=3)
    prog = g.program()
    tasks = list(for_each_task(prog))
    assert tasks == g.tasks[1:]  # init_task itself is the head
    assert [task_sample(prog, t) for t in tasks][2] == {
        "pid": 102,
        "comm": "task2",
        "state": "R",
        "cpu": 2,
        "sum_exec_runtime": 3_000_000,
    }


@pytest.mark.parametrize(
    "state,exit_state,char",
    [(0, 0, "R"), (1, 0, "S"), (2, 0, "D"), (0x402, 0, "I"), (4, 0, "T"), (0, 32, "Z")],
)
def test_task_state_to_char(synthetic_guest, state, exit_state, char):
    import struct

    g = synthetic_guest()
    t = g.tasks[1]
    g.write_va(t + 24, struct.pack("<Ii", state, exit_state))
    assert task_state_to_char(g.program(), t) == char


def test_older_task_struct_names(synthetic_guest):
    g = synthetic_guest(old_task=True)
    prog = g.program()
    t = g.tasks[2]
    assert (task_state_to_char(prog, t), task_cpu(prog, t)) == ("R", 1)


def test_cyclic_list_is_bounded(synthetic_guest):
    g = synthetic_guest()
    a, b = g.tasks[1] + 32, g.tasks[2] + 32
    g.write_u64(b, a)  # task1 -> task0 again: never back to head
    prog = g.program()
    with pytest.raises(BadDataError, match="more than 10 nodes"):
        list(list_for_each(prog, g.tasks[0] + 32, limit=10))


def test_null_link_is_an_error(synthetic_guest):
    g = synthetic_guest()
    g.write_u64(g.tasks[1] + 32, 0)
    with pytest.raises(BadDataError, match="NULL link"):
        list(for_each_task(g.program()))
