"""Fixtures for guest/scx tests (the fakes themselves are in scx_fakes.py)."""

import sys

import pytest
from scx_fakes import HERE, FakeKernel, FakeTree, Recorder


@pytest.fixture
def tree(tmp_path):
    return FakeTree(tmp_path / "root")


@pytest.fixture
def recorder():
    rec = Recorder()
    yield rec
    assert rec.errors == [], "frames that break the wire contract were sent"


@pytest.fixture
def fake_scheduler(tmp_path):
    """Path of an executable copy of fake_scheduler.py run by this interpreter."""
    path = tmp_path / "scx_fake"
    path.write_text(f"#!{sys.executable}\n" + (HERE / "fake_scheduler.py").read_text())
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def kernel(tree):
    k = FakeKernel(tree)
    yield k
    k.close()
