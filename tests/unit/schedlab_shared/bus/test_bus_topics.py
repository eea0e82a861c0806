import pytest

from schedlab_shared.bus import topics
from schedlab_shared.bus.vmm import STREAMS, Stream


@pytest.mark.parametrize(
    ("built", "parsed"),
    [
        (topics.stream("r1", Stream.BULK), ("r1", topics.STREAM, "bulk")),
        (topics.vm_state("r1"), ("r1", topics.STATE, "")),
        (topics.guest("r1", "SYS_RDY"), ("r1", topics.GUEST, "SYS_RDY")),
        (topics.monitor_sample("r1"), ("r1", topics.MONITOR, "sample")),
    ],
)
def test_every_built_topic_parses_back(built, parsed):
    assert topics.parse(built) == parsed


def test_prefixes_cover_their_topics_and_stop_at_a_dot():
    for name in STREAMS:
        t = topics.stream("a", name)
        assert t.startswith(topics.stream_prefix("a")) and t.startswith(topics.vm_prefix("a"))
        assert not t.startswith(topics.vm_prefix("ab")) and not topics.stream(
            "ab", name
        ).startswith(topics.vm_prefix("a"))
    assert topics.guest("a", "X").startswith(topics.guest("a"))


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "vm",
        "vm..stream.x",
        "vm.a",
        "vm.a.nope.x",
        "vm.a.stream",
        "vm.a.state.x",
        "xx.a.stream.x",
    ],
)
def test_parse_rejects_what_was_not_built_here(bad):
    assert topics.parse(bad) is None


@pytest.mark.parametrize("vm_id", ["", "a.b"])
def test_a_vm_id_that_would_break_parsing_is_refused(vm_id):
    with pytest.raises(ValueError):
        topics.stream(vm_id, "console")
