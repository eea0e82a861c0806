"""guest/rundoc.py: the run document, one validated map defined once for host and guest."""

import doctest
import hashlib

import msgpack
import pytest

from guest import rundoc
from guest.rundoc import FileEntry, Scheduler, build, validate
from guest.spec import RunSpec, SpecError

SPEC = RunSpec("cgroup-spinners", duration=0.5, cgroups=3, workers=4, fairness=0.2, wire_noise=2)
SHA = hashlib.sha256(b"x").hexdigest()
SCX = FileEntry("scheduler", "scx_simple", 0o755, 1, SHA)


def doc(**changes):
    d = build(
        SPEC, files=[SCX], scheduler=Scheduler(SCX.path, ("-v",)), entropy=b"e" * 32, run_id="r-1"
    )
    d.update(changes)
    return d


def test_build_validate_round_trip_through_msgpack():
    d = doc()
    wire_doc = msgpack.unpackb(msgpack.packb(d, use_bin_type=True), raw=False)
    rd = validate(wire_doc)
    assert rd.spec == SPEC and rd.run_id == "r-1" and rd.entropy == b"e" * 32
    assert rd.files == (SCX,) and rd.files[0].path == "/run/schedlab/inputs/scheduler/scx_simple"
    assert rd.scheduler == Scheduler(SCX.path, ("-v",)) and not rd.scheduler.eevdf
    assert rd.scenario == {"kind": "cgroup-spinners", "duration": 0.5, "cgroups": 3, "workers": 4}
    assert validate(rd.as_doc()) == rd


def test_minimal_document_takes_defaults():
    rd = validate({"version": 1, "scenario": {"kind": "cgroup-spinners"}, "entropy": bytes(32)})
    assert rd.spec == RunSpec("cgroup-spinners") and rd.scheduler.eevdf and rd.files == ()


def test_fresh_entropy_by_default():
    a, b = build(SPEC), build(SPEC)
    assert len(a["entropy"]) == 32 and a["entropy"] != b["entropy"]


@pytest.mark.parametrize(
    "mutate,field",
    [
        (lambda d: d.pop("version"), "version"),
        (lambda d: d.update(version=2), "version"),
        (lambda d: d.update(version=True), "version"),
        (lambda d: d.update(bogus=1), "bogus"),
        (lambda d: d.pop("entropy"), "entropy"),
        (lambda d: d.update(entropy=b"short"), "entropy"),
        (lambda d: d.update(entropy="x" * 32), "entropy"),
        (lambda d: d.update(run_id="x" * 65), "run_id"),
        (lambda d: d.update(run_id="a\nb"), "run_id"),
        (lambda d: d.pop("scenario"), "scenario"),
        (lambda d: d.update(scenario=[]), "scenario"),
        (lambda d: d["scenario"].update(kind="other"), "scenario.kind"),
        (lambda d: d["scenario"].update(workers=0), "scenario.workers"),
        (lambda d: d["scenario"].update(workers="4"), "scenario.workers"),
        (lambda d: d["scenario"].update(extra=1), "scenario.extra"),
        (lambda d: d["verdict"].update(fairness=2), "verdict.fairness"),
        (lambda d: d["verdict"].update(workers=2), "verdict.workers"),
        (lambda d: d["hooks"].update(crash="x"), "hooks.crash"),
        (lambda d: d["scheduler"].update(path="relative/scx"), "scheduler.path"),
        (lambda d: d["scheduler"].update(path="/a/../etc/passwd"), "scheduler.path"),
        (
            lambda d: d["scheduler"].update(path="/run/schedlab/inputs/scheduler/other"),
            "scheduler.path",
        ),
        (lambda d: d["scheduler"].update(path="/bin/x\0"), "scheduler.path"),
        (lambda d: d["scheduler"].update(path="", args=["-v"]), "scheduler.args"),
        (lambda d: d["scheduler"].update(args="-v"), "scheduler.args"),
        (lambda d: d["scheduler"].update(args=[1]), "scheduler.args[0]"),
        (lambda d: d["scheduler"].update(args=["a"] * 129), "scheduler.args"),
        (lambda d: d["scheduler"].update(args=["a" * 20000] * 2), "scheduler.args"),
        (lambda d: d.update(files={}), "files"),
        (lambda d: d.update(files=[SCX.as_map()] * 2), "files[1].name"),
        (lambda d: d["files"][0].update(kind="etc"), "files[0].kind"),
        (lambda d: d["files"][0].update(name="../../etc/passwd"), "files[0].name"),
        (lambda d: d["files"][0].update(name="a/b"), "files[0].name"),
        (lambda d: d["files"][0].update(name=".."), "files[0].name"),
        (lambda d: d["files"][0].update(name=".hidden"), "files[0].name"),
        (lambda d: d["files"][0].update(name="-rf"), "files[0].name"),
        (lambda d: d["files"][0].update(name=""), "files[0].name"),
        (lambda d: d["files"][0].update(name="x" * 129), "files[0].name"),
        (lambda d: d["files"][0].update(mode=0o4755), "files[0].mode"),
        (lambda d: d["files"][0].update(mode=-1), "files[0].mode"),
        (lambda d: d["files"][0].update(size=-1), "files[0].size"),
        (lambda d: d["files"][0].update(size=rundoc.MAX_FILE_BYTES + 1), "files[0].size"),
        (lambda d: d["files"][0].update(sha256="ab"), "files[0].sha256"),
        (lambda d: d["files"][0].update(sha256=SHA.upper()), "files[0].sha256"),
        (lambda d: d["files"][0].pop("mode"), "files[0].mode"),
        (lambda d: d["files"][0].update(owner="root"), "files[0].owner"),
    ],
)
def test_bad_documents_name_the_field(mutate, field):
    d = doc()
    mutate(d)
    with pytest.raises(SpecError) as e:
        validate(d)
    assert e.value.key == field, str(e.value)


def test_file_count_and_total_bounded():
    many = [
        FileEntry("include", f"f{i}", 0o644, 0, SHA).as_map() for i in range(rundoc.MAX_FILES + 1)
    ]
    with pytest.raises(SpecError, match="files: 257 files"):
        validate(doc(files=many))
    big = [
        FileEntry("payload", f"p{i}", 0o644, rundoc.MAX_FILE_BYTES, SHA).as_map() for i in range(2)
    ]
    with pytest.raises(SpecError, match="bytes in all"):
        validate(doc(files=big, scheduler={}))


def test_not_a_map():
    with pytest.raises(SpecError, match="want a map"):
        validate([1, 2])


def test_doctest():
    assert doctest.testmod(rundoc).failed == 0


def test_scheduler_env_is_carried_sorted_and_bounded():
    env = {"LD_LIBRARY_PATH": "/run/schedlab/inputs/lib", "A_1": "x"}
    rd = validate(doc(scheduler={"path": SCX.path, "args": [], "env": env}))
    assert rd.scheduler.env == (("A_1", "x"), ("LD_LIBRARY_PATH", "/run/schedlab/inputs/lib"))
    assert validate(rd.as_doc()) == rd
    for bad in ({"1X": "v"}, {"A=B": "v"}, {"A": 1}, {"A": "a\0b"}, ["A"]):
        with pytest.raises(SpecError, match="scheduler.env"):
            validate(doc(scheduler={"path": SCX.path, "env": bad}))
    with pytest.raises(SpecError, match="scheduler.env"):
        validate(doc(scheduler={"path": SCX.path, "env": {f"V{i}": "" for i in range(33)}}))
    with pytest.raises(SpecError, match="scheduler.env"):
        validate(doc(scheduler={"path": "", "env": {"A": "b"}}))
