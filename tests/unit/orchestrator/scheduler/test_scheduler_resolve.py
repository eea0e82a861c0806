"""--scheduler NAME|PATH resolution: eevdf, examples (fake build), user binaries and scripts."""

import json
import shutil
import struct
import subprocess
from pathlib import Path

import msgpack
import pytest
from conftest import FakeBuilder, make_kernel
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile

from guest.rundoc import INPUTS_DIR as GUEST_INPUTS_DIR
from guest.rundoc import Scheduler
from orchestrator.inputs import prepare
from orchestrator.scheduler.cache import ensure_built
from orchestrator.scheduler.errors import ResolveError
from orchestrator.scheduler.resolve import (
    guest_interpreters,
    resolve_scheduler,
    split_sched_args,
)
from tests.framework.prereq import require

SYSTEM_BINARY = Path("/usr/bin/ls")  # coreutils: dynamically linked (libc, libselinux, ...)


def _soname(path: Path) -> str | None:
    with path.open("rb") as fh:
        for sec in ELFFile(fh).iter_sections():
            if isinstance(sec, DynamicSection):
                for tag in sec.iter_tags():
                    if tag.entry.d_tag == "DT_SONAME":
                        return tag.soname
    return None


def test_eevdf_runs_nothing():
    launch = resolve_scheduler("eevdf", None)
    assert launch.is_eevdf and launch.files == () and launch.argv == () and launch.origin == "eevdf"
    assert resolve_scheduler("EEVDF", None).is_eevdf
    with pytest.raises(ResolveError, match="takes no flags or args"):
        resolve_scheduler("eevdf", None, sched_args=["-v"])


def test_system_binary_with_its_libraries(tmp_path):
    require(SYSTEM_BINARY.is_file(), f"{SYSTEM_BINARY} missing")
    link = tmp_path / "my_sched"
    link.symlink_to(SYSTEM_BINARY)
    launch = resolve_scheduler(str(link), None, sched_args=["-l", "/"])
    exe, *libs = launch.files
    assert (exe.kind, exe.name, exe.path) == ("scheduler", "my_sched", SYSTEM_BINARY.resolve())
    assert launch.argv == (f"{GUEST_INPUTS_DIR}/scheduler/my_sched", "-l", "/")
    assert launch.origin == "path" and launch.definition.ops is None
    names = [f.name for f in libs]
    assert "libc.so.6" in names and len(names) == len(set(names))
    assert not any(n.startswith("ld-linux") for n in names)
    for lib in libs:  # each is the real file whose SONAME is the name the loader asks for
        assert lib.kind == "lib" and lib.path.is_file() and not lib.path.is_symlink()
        assert _soname(lib.path) == lib.name
        assert lib.guest_path == f"{GUEST_INPUTS_DIR}/lib/{lib.name}" and lib.mode == 0o644
    assert launch.env == {"LD_LIBRARY_PATH": f"{GUEST_INPUTS_DIR}/lib"}
    plain = launch.to_dict()
    assert msgpack.unpackb(msgpack.packb(plain)) == json.loads(json.dumps(plain))
    assert plain["files"][0]["guest"] == launch.argv[0]


def _gcc(tmp_path, name, source, *args):
    require(shutil.which("gcc") is not None, "gcc missing")
    (tmp_path / f"{name}.c").write_text(source)
    out = tmp_path / name
    subprocess.run(
        ["gcc", "-o", str(out), str(tmp_path / f"{name}.c"), *args], check=True, capture_output=True
    )
    return out


def test_missing_library_is_one_line(tmp_path):
    lib = _gcc(
        tmp_path,
        "libgone.so.1",
        "int gone(void){return 1;}\n",
        "-shared",
        "-fPIC",
        "-Wl,-soname,libgone.so.1",
    )
    prog = _gcc(tmp_path, "prog", "int gone(void); int main(void){return gone();}\n", str(lib))
    lib.unlink()
    with pytest.raises(ResolveError) as err:
        resolve_scheduler(str(prog), None)
    assert "\n" not in str(err.value) and "libgone.so.1 not found" in str(err.value)


def test_static_binary_needs_no_libraries(tmp_path):
    prog = tmp_path / "static"
    try:
        prog = _gcc(tmp_path, "static", "int main(void){return 0;}\n", "-static")
    except subprocess.CalledProcessError:
        require(False, "no static libc (libc6-dev's libc.a)")
    launch = resolve_scheduler(str(prog), None)
    assert [f.kind for f in launch.files] == ["scheduler"] and launch.env == {}


def test_foreign_elf_is_refused(tmp_path):
    arm = tmp_path / "arm"
    header = (
        b"\x7fELF\x02\x01\x01"
        + bytes(9)
        + struct.pack("<HHIQQQIHHHHHH", 2, 183, 1, 0, 0, 0, 0, 64, 56, 0, 64, 0, 0)
    )
    arm.write_bytes(header)
    arm.chmod(0o755)
    with pytest.raises(ResolveError, match="built for EM_AARCH64.*guest is x86-64"):
        resolve_scheduler(str(arm), None)


def test_scripts(tmp_path):
    good = tmp_path / "sched.py"
    good.write_text("#!/usr/bin/python3 -S\nprint('hi')\n")
    good.chmod(0o755)
    launch = resolve_scheduler(str(good), None, sched_args=["x"])
    assert [(f.kind, f.name) for f in launch.files] == [("scheduler", "sched.py")]
    assert launch.argv == (f"{GUEST_INPUTS_DIR}/scheduler/sched.py", "x") and launch.env == {}
    bad = tmp_path / "sched.sh"
    bad.write_text("#!/bin/sh\necho hi\n")
    bad.chmod(0o755)
    with pytest.raises(ResolveError) as err:
        resolve_scheduler(str(bad), None)
    msg = str(err.value)
    assert "'/bin/sh' does not exist in the guest" in msg and "/usr/bin/python3" in msg
    assert "/usr/bin/python3" in guest_interpreters() and "/bin/python3" in guest_interpreters()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: p, "no such file or directory; pass one of eevdf, scx_simple"),
        (lambda p: (p.mkdir(), p)[1], "not a regular file"),
        (lambda p: (p.write_text("#!/usr/bin/python3\n"), p)[1], "not executable (chmod +x"),
        (
            lambda p: (p.write_bytes(b"MZ\x90\x00"), p.chmod(0o755), p)[2],
            "neither an ELF binary nor a #! script",
        ),
    ],
)
def test_bad_paths_are_one_line(tmp_path, setup, message):
    path = setup(tmp_path / "thing")
    with pytest.raises(ResolveError) as err:
        resolve_scheduler(str(path), None)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_unknown_bare_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ResolveError, match="--scheduler scx_nope: no such file"):
        resolve_scheduler("scx_nope", None)


class ElfBuilder(FakeBuilder):
    """The fake build, with real (system) ELF binaries in place of the scripts."""

    def build(self, kernel, out, work, log, progress):
        fields = super().build(kernel, out, work, log, progress)
        for n in self.names:
            shutil.copy(SYSTEM_BINARY, out / "bin" / n)
        return fields


def test_example_is_built_on_first_use(cache, tmp_path):
    require(SYSTEM_BINARY.is_file(), f"{SYSTEM_BINARY} missing")
    kernel = make_kernel(tmp_path)
    fake = ElfBuilder()
    calls = []

    def ensure(k, progress):
        calls.append(k.version)
        return ensure_built(k, builder=fake, progress=progress)

    launch = resolve_scheduler(
        "scx_qmap", kernel, flags=["stall-user"], sched_args=["-v"], ensure=ensure
    )
    assert calls == [kernel.version] and launch.kernel == kernel.version
    assert launch.origin == "example" and launch.definition.ops == "qmap"
    exe = launch.files[0]
    assert (exe.kind, exe.name) == ("scheduler", "scx_qmap")
    assert exe.path == cache / "schedulers" / kernel.version / "bin/scx_qmap"
    assert launch.argv == (f"{GUEST_INPUTS_DIR}/scheduler/scx_qmap", "-t", "20", "-v")
    assert "libc.so.6" in [f.name for f in launch.files[1:]]
    assert launch.to_dict()["watchdog_timeout_s"] == 5.0
    resolve_scheduler("scx_simple", kernel, ensure=ensure)
    assert fake.calls == 1  # the second example came from the cache

    with pytest.raises(ResolveError, match="flag boost-nice requires batch"):
        resolve_scheduler("scx_qmap", kernel, flags=["boost-nice"], ensure=ensure)
    with pytest.raises(ResolveError, match="no flag 'nope'"):
        resolve_scheduler("scx_qmap", kernel, flags=["nope"], ensure=ensure)
    with pytest.raises(ResolveError, match="build for .* has no scx_cpu0"):
        resolve_scheduler("scx_cpu0", kernel, ensure=ensure)
    with pytest.raises(ResolveError, match="needs a kernel"):
        resolve_scheduler("scx_qmap", None, ensure=ensure)


def test_copy_of_an_example_under_another_name(cache, tmp_path):
    require(SYSTEM_BINARY.is_file(), f"{SYSTEM_BINARY} missing")
    built = ensure_built(make_kernel(tmp_path), builder=ElfBuilder())
    mine = tmp_path / "my-qmap"
    shutil.copy(built.schedulers["scx_qmap"].path, mine)
    launch = resolve_scheduler(str(mine), None, sched_args=split_sched_args("-e 5 -v"))
    assert launch.files[0].name == "my-qmap" and launch.argv[1:] == ("-e", "5", "-v")
    with pytest.raises(ResolveError, match="a path has no named flags"):
        resolve_scheduler(str(mine), None, flags=["verbose"])


def test_split_sched_args():
    assert split_sched_args('-e 100 -c "/a b"') == ("-e", "100", "-c", "/a b")
    assert split_sched_args(None) == () and split_sched_args("") == ()
    with pytest.raises(ResolveError, match="--sched-args"):
        split_sched_args('-c "unterminated')


def test_launch_feeds_the_transfer(tmp_path):
    """The transfer's own preparation accepts the files and argv as they are."""
    from guest.spec import RunSpec

    require(SYSTEM_BINARY.is_file(), f"{SYSTEM_BINARY} missing")
    launch = resolve_scheduler(str(SYSTEM_BINARY), None, sched_args=["-v"])
    inputs = prepare(
        RunSpec("cgroup-spinners"), files=launch.files, scheduler=launch.rundoc_scheduler()
    )
    doc = inputs.doc
    assert doc["scheduler"] == {"path": launch.argv[0], "args": ["-v"], "env": launch.env}
    assert launch.env == {"LD_LIBRARY_PATH": "/run/schedlab/inputs/lib"}
    assert [(f["kind"], f["name"]) for f in doc["files"]] == [
        (f.kind, f.name) for f in launch.files
    ]
    assert doc["files"][0]["mode"] == 0o755 and inputs.paths[0] == SYSTEM_BINARY.resolve()
    assert resolve_scheduler("eevdf", None).rundoc_scheduler() == Scheduler()
