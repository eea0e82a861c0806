"""Our cffi layouts, ioctl numbers and capability numbers against the system's kernel headers.

A C program including <linux/kvm.h> prints sizeof/offsetof of every field we declare
(recursing into nested structs and unions) and the value of every macro we mirror.
"""

import os
import shutil
import subprocess
import tempfile

import pytest

from tests.framework.prereq import missing
from vmm_proc.kvm import ioctls, vcpu, vm
from vmm_proc.kvm._convert_state import MAX_XCRS
from vmm_proc.kvm._ffi import ffi
from vmm_proc.kvm.cap import Cap
from vmm_proc.kvm.exits import SYSTEM_EVENT_CRASH, SYSTEM_EVENT_RESET, SYSTEM_EVENT_SHUTDOWN
from vmm_proc.kvm.state_types import IOAPIC_NUM_PINS

STRUCTS = (
    "kvm_regs", "kvm_segment", "kvm_dtable", "kvm_sregs", "kvm_fpu", "kvm_msr_entry",
    "kvm_msrs", "kvm_msr_list", "kvm_cpuid_entry2", "kvm_cpuid2", "kvm_lapic_state",
    "kvm_mp_state", "kvm_userspace_memory_region", "kvm_irqfd", "kvm_ioeventfd",
    "kvm_pit_config", "kvm_irq_level", "kvm_run",
    "kvm_xcr", "kvm_xcrs", "kvm_debugregs", "kvm_xsave", "kvm_vcpu_events", "kvm_pic_state",
    "kvm_ioapic_state", "kvm_irqchip", "kvm_pit_channel_state", "kvm_pit_state2",
    "kvm_clock_data", "kvm_enable_cap",
)  # fmt: skip

MACROS = {
    "KVM_MEM_LOG_DIRTY_PAGES": vm.KVM_MEM_LOG_DIRTY_PAGES,
    "KVM_MEM_READONLY": vm.KVM_MEM_READONLY,
    "KVM_PIT_SPEAKER_DUMMY": vm.KVM_PIT_SPEAKER_DUMMY,
    "KVM_IRQFD_FLAG_DEASSIGN": vm._IRQFD_FLAG_DEASSIGN,
    "KVM_IRQFD_FLAG_RESAMPLE": vm._IRQFD_FLAG_RESAMPLE,
    "KVM_IOEVENTFD_FLAG_DATAMATCH": vm._IOEVENTFD_FLAG_DATAMATCH,
    "KVM_IOEVENTFD_FLAG_PIO": vm._IOEVENTFD_FLAG_PIO,
    "KVM_IOEVENTFD_FLAG_DEASSIGN": vm._IOEVENTFD_FLAG_DEASSIGN,
    "KVM_EXIT_IO": vcpu._EXIT_IO,
    "KVM_EXIT_HLT": vcpu._EXIT_HLT,
    "KVM_EXIT_MMIO": vcpu._EXIT_MMIO,
    "KVM_EXIT_SHUTDOWN": vcpu._EXIT_SHUTDOWN,
    "KVM_EXIT_FAIL_ENTRY": vcpu._EXIT_FAIL_ENTRY,
    "KVM_EXIT_INTERNAL_ERROR": vcpu._EXIT_INTERNAL_ERROR,
    "KVM_EXIT_SYSTEM_EVENT": vcpu._EXIT_SYSTEM_EVENT,
    "KVM_EXIT_IO_OUT": vcpu._IO_OUT,
    "KVM_SYSTEM_EVENT_SHUTDOWN": SYSTEM_EVENT_SHUTDOWN,
    "KVM_SYSTEM_EVENT_RESET": SYSTEM_EVENT_RESET,
    "KVM_SYSTEM_EVENT_CRASH": SYSTEM_EVENT_CRASH,
    "KVM_IRQCHIP_PIC_MASTER": vm.IRQCHIP_PIC_MASTER,
    "KVM_IRQCHIP_PIC_SLAVE": vm.IRQCHIP_PIC_SLAVE,
    "KVM_IRQCHIP_IOAPIC": vm.IRQCHIP_IOAPIC,
    "KVM_X86_DISABLE_EXITS_MWAIT": vm.DISABLE_EXITS_MWAIT,
    "KVM_X86_DISABLE_EXITS_HLT": vm.DISABLE_EXITS_HLT,
    "KVM_X86_DISABLE_EXITS_PAUSE": vm.DISABLE_EXITS_PAUSE,
    "KVM_X86_DISABLE_EXITS_CSTATE": vm.DISABLE_EXITS_CSTATE,
    "KVM_MAX_XCRS": MAX_XCRS,
    "KVM_IOAPIC_NUM_PINS": IOAPIC_NUM_PINS,
}


def _fields(ctype, prefix="", base=0):
    """(path, absolute offset, size or 0 for flexible arrays) for every field, recursively."""
    for name, field in ctype.fields:
        path, offset = f"{prefix}{name}", base + field.offset
        flexible = field.type.kind == "array" and field.type.length is None
        yield path, offset, 0 if flexible else ffi.sizeof(field.type)
        if field.type.kind in ("struct", "union"):
            yield from _fields(field.type, f"{path}.", offset)


def _expected():
    """{key: value} as our Python side sees it."""
    out = {}
    for s in STRUCTS:
        ctype = ffi.typeof(f"struct {s}")
        out[f"sizeof {s}"] = ffi.sizeof(ctype)
        for path, offset, size in _fields(ctype):
            out[f"offsetof {s}.{path}"] = offset
            if size:
                out[f"sizeof {s}.{path}"] = size
    for name in dir(ioctls):
        if name.startswith("KVM_") and isinstance(getattr(ioctls, name), int):
            out[name] = getattr(ioctls, name)
    for cap in Cap:
        out[f"KVM_CAP_{cap.name}"] = int(cap)
    out.update(MACROS)
    return out


def _c_program(expected):
    lines = [
        "#include <stdio.h>",
        "#include <stddef.h>",
        "#include <linux/kvm.h>",
        "int main(void) {",
    ]
    for key in expected:
        if key.startswith("offsetof "):
            s, path = key.split(" ", 1)[1].split(".", 1)
            expr = f"offsetof(struct {s}, {path})"
        elif key.startswith("sizeof ") and "." in key:
            s, path = key.split(" ", 1)[1].split(".", 1)
            expr = f"sizeof(((struct {s} *)0)->{path})"
        elif key.startswith("sizeof "):
            expr = f"sizeof(struct {key.split(' ', 1)[1]})"
        else:
            expr = key
        lines.append(f'    printf("%s=%llu\\n", "{key}", (unsigned long long)({expr}));')
    lines += ["    return 0;", "}"]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def header_values():
    if shutil.which("gcc") is None or not os.path.exists("/usr/include/linux/kvm.h"):
        reason = "gcc or the linux/kvm.h headers (linux-libc-dev) are missing"
        missing(reason)
    expected = _expected()
    with tempfile.TemporaryDirectory(prefix="schedlab-abi-") as tmp:
        src, exe = os.path.join(tmp, "abi.c"), os.path.join(tmp, "abi")
        with open(src, "w") as f:
            f.write(_c_program(expected))
        subprocess.run(["gcc", "-o", exe, src], check=True, capture_output=True, text=True)
        out = subprocess.run([exe], check=True, capture_output=True, text=True).stdout
    return expected, dict((k, int(v)) for k, v in (line.split("=") for line in out.splitlines()))


def test_struct_layouts_match_headers(header_values):
    expected, actual = header_values
    layout = {k: v for k, v in expected.items() if k.startswith(("sizeof", "offsetof"))}
    assert len(layout) > 150
    assert {k: actual[k] for k in layout} == layout


def test_ioctl_numbers_match_headers(header_values):
    expected, actual = header_values
    numbers = {k: v for k, v in expected.items() if k.startswith("KVM_") and k in dir(ioctls)}
    assert "KVM_RUN" in numbers and "KVM_SET_USER_MEMORY_REGION" in numbers
    assert {k: actual[k] for k in numbers} == numbers


def test_caps_and_flags_match_headers(header_values):
    expected, actual = header_values
    rest = {k: v for k, v in expected.items() if k.startswith("KVM_CAP_") or k in MACROS}
    assert {k: actual[k] for k in rest} == rest


def test_known_kvm_run_offsets():
    # Spot values from include/uapi/linux/kvm.h, independent of the local headers.
    assert ffi.sizeof("struct kvm_run") == 2352
    assert ffi.offsetof("struct kvm_run", "exit_reason") == 8
    assert ffi.offsetof("struct kvm_run", "io") == 32
    assert ffi.offsetof("struct kvm_run", "s") == 304
    assert ioctls.KVM_RUN == 0xAE80
    assert ioctls.KVM_SET_USER_MEMORY_REGION == 0x4020AE46


def test_hot_path_struct_formats_match_cffi():
    # VcpuFd decodes io/mmio with struct formats; they must agree with the cdef.
    assert vcpu._UNION_OFF == ffi.offsetof("struct kvm_run", "io")
    assert vcpu._UNION_OFF == ffi.offsetof("struct kvm_run", "mmio")
    assert vcpu._REASON_OFF == ffi.offsetof("struct kvm_run", "exit_reason")
    io_fields = ("direction", "size", "port", "count", "data_offset")
    io_offsets = [ffi.offsetof("struct kvm_run", "io", f) - vcpu._UNION_OFF for f in io_fields]
    assert io_offsets == [0, 1, 2, 4, 8] and vcpu._IO.size == 16
    mmio_fields = ("phys_addr", "data", "len", "is_write")
    mmio_offsets = [
        ffi.offsetof("struct kvm_run", "mmio", f) - vcpu._UNION_OFF for f in mmio_fields
    ]
    assert mmio_offsets == [0, vcpu._MMIO_DATA_OFF, 16, 20] and vcpu._MMIO.size == 21
