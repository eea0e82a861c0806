import pytest

from vmm_proc.acpi import aml


@pytest.mark.parametrize(
    "body, encoded",
    [
        (0, "01"),
        (62, "3f"),
        (63, "4104"),  # total 65 = 0x41: low nibble 1, then 0x04
        (4093, "4fff"),  # total 4095, the last 2-byte length
        (4094, "810001"),  # total 4097
        (0xFFFFC, "8fffff"),  # total 0xFFFFF, the last 3-byte length
        (0xFFFFD, "c1000001"),  # total 0x100001
    ],
)
def test_pkg_length(body, encoded):
    out = aml.pkg_length(body)
    # decode the way ACPICA does and check it equals body + len(out)
    lead = out[0]
    n = lead >> 6
    total = (
        lead & 0x3F
        if n == 0
        else (lead & 0xF) | sum(b << (4 + 8 * i) for i, b in enumerate(out[1:]))
    )
    assert len(out) == n + 1 and total == body + len(out)
    assert out.hex() == encoded


def test_pkg_length_limits():
    with pytest.raises(ValueError):
        aml.pkg_length(1 << 28)
    with pytest.raises(ValueError):
        aml.pkg_length(-1)


@pytest.mark.parametrize(
    "path, encoded",
    [
        ("_HID", b"_HID"),
        ("_S5", b"_S5_"),
        ("\\_SB", b"\\_SB_"),
        ("\\_SB.VR00", b"\\\x2e_SB_VR00"),
        ("\\_SB.PCI0.S08", b"\\\x2f\x03_SB_PCI0S08_"),
        ("^COM1", b"^COM1"),
    ],
)
def test_name_string(path, encoded):
    assert aml.name_string(path) == encoded


@pytest.mark.parametrize("bad", ["1ABC", "ABCDE", "ab", "\\_SB..X"])
def test_bad_names(bad):
    with pytest.raises(ValueError):
        aml.name_string(bad)


@pytest.mark.parametrize(
    "value, encoded",
    [
        (0, "00"),
        (1, "01"),
        (2, "0a02"),
        (0xFF, "0aff"),
        (0x100, "0b0001"),
        (0xD0000000, "0c000000d0"),
        (1 << 32, "0e0000000001000000"),
    ],
)
def test_integer(value, encoded):
    assert aml.integer(value).hex() == encoded


def test_eisa_id_and_string():
    assert aml.eisa_id("PNP0501") == bytes.fromhex("0c41d00501")
    assert aml.string("LNRO0005") == b"\x0dLNRO0005\x00"
    with pytest.raises(ValueError):
        aml.eisa_id("pnp0501")


def test_resource_descriptors():
    m = aml.memory32_fixed(0xD0000000, 0x1000)
    assert m == bytes.fromhex("86090001000000d000100000")
    assert aml.interrupt(5) == bytes.fromhex("890600030105000000")
    assert aml.interrupt(9, edge=False, active_low=True, shared=True)[3] == 0x0D
    assert aml.io_port(0x3F8, 8) == bytes.fromhex("4701f803f8030108")
    assert aml.irq_no_flags(4) == bytes.fromhex("221000")
    tmpl = aml.resource_template(aml.irq_no_flags(4))
    assert tmpl == bytes.fromhex("11080a052210007900")
    with pytest.raises(ValueError):
        aml.memory32_fixed(0xFFFFF000, 0x2000)
    with pytest.raises(ValueError):
        aml.irq_no_flags(16)
