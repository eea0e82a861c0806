import pytest

from vmm_proc.boot.cmdline import Cmdline, CmdlineError, CmdlineErrorKind


def test_builds_space_separated_line_with_nul():
    cl = Cmdline()
    cl.insert("console", "ttyS0")
    cl.insert_str("  nokaslr panic=-1 ")
    cl.insert("root", "/dev/vda")
    assert str(cl) == "console=ttyS0 nokaslr panic=-1 root=/dev/vda"
    assert cl.as_bytes() == b"console=ttyS0 nokaslr panic=-1 root=/dev/vda\0"
    assert len(cl) == len(str(cl))


@pytest.mark.parametrize(
    "key, value, kind",
    [
        ("", "x", CmdlineErrorKind.EMPTY_KEY),
        ("a b", "x", CmdlineErrorKind.HAS_SPACE),
        ("ab", "x y", CmdlineErrorKind.HAS_SPACE),
        ("a=b", "x", CmdlineErrorKind.HAS_EQUALS),
        ("a\tb", "x", CmdlineErrorKind.INVALID_ASCII),
        ("ab", "caf\u00e9", CmdlineErrorKind.INVALID_ASCII),
    ],
)
def test_insert_rejects(key, value, kind):
    cl = Cmdline()
    with pytest.raises(CmdlineError) as exc:
        cl.insert(key, value)
    assert exc.value.kind is kind
    assert str(cl) == ""


def test_capacity_counts_the_nul():
    cl = Cmdline(capacity=10)
    cl.insert("a", "1234567")  # 9 chars + NUL = 10
    with pytest.raises(CmdlineError) as exc:
        cl.insert_str("b")
    assert exc.value.kind is CmdlineErrorKind.TOO_LARGE
    assert str(cl) == "a=1234567"


def test_insert_str_rejects_control_characters():
    with pytest.raises(CmdlineError) as exc:
        Cmdline().insert_str("quiet\n")
    assert exc.value.kind is CmdlineErrorKind.INVALID_ASCII
