import os

from guest.kmsg import KmsgReader, format_record


def test_format_record() -> None:
    assert (
        format_record(b"6,339,5140900,-;Linux version 7.2\n SUBSYSTEM=x\n")
        == b"[    5.140900] Linux version 7.2\n"
    )
    assert format_record(b"garbage without fields") == b"\n"
    assert format_record(b"6,1,notanumber,-;text") == b"text\n"


def test_reader_drains_records_then_stops(tmp_path) -> None:  # noqa: ANN001
    fifo = tmp_path / "kmsg"
    os.mkfifo(fifo)
    reader = KmsgReader(str(fifo))
    w = os.open(fifo, os.O_WRONLY)
    try:
        os.write(w, b"6,1,1000000,-;hello\n")
        assert reader.drain() == b"[    1.000000] hello\n"
        assert reader.drain() == b""  # EAGAIN: nothing new
    finally:
        os.close(w)
        reader.close()
    assert KmsgReader(str(tmp_path / "missing")).drain() == b""
