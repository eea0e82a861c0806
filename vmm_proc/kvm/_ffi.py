"""cffi declarations of the linux/kvm.h structures schedlab uses, plus libc entry points.

ABI mode only (``ffi.dlopen(None)``): nothing is compiled at install time. Layouts follow
include/uapi/linux/kvm.h and arch/x86/include/uapi/asm/kvm.h; tests/unit/vmm_proc/kvm/
test_ffi.py checks every size and offset against the system's own headers with gcc.
cffi is confined to this module and to vmm_proc/mem.
"""

from __future__ import annotations

from typing import Any

import cffi  # type: ignore[import-untyped]

__all__ = ("ffi", "lib")

_CDEF = """
typedef uint8_t __u8; typedef uint16_t __u16; typedef uint32_t __u32; typedef uint64_t __u64;
typedef int32_t __s32;

struct kvm_regs {
    __u64 rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp;
    __u64 r8, r9, r10, r11, r12, r13, r14, r15;
    __u64 rip, rflags;
};
struct kvm_segment {
    __u64 base; __u32 limit; __u16 selector; __u8 type;
    __u8 present, dpl, db, s, l, g, avl; __u8 unusable; __u8 padding;
};
struct kvm_dtable { __u64 base; __u16 limit; __u16 padding[3]; };
struct kvm_sregs {
    struct kvm_segment cs, ds, es, fs, gs, ss, tr, ldt;
    struct kvm_dtable gdt, idt;
    __u64 cr0, cr2, cr3, cr4, cr8, efer, apic_base;
    __u64 interrupt_bitmap[4];
};
struct kvm_fpu {
    __u8 fpr[8][16]; __u16 fcw; __u16 fsw; __u8 ftwx; __u8 pad1; __u16 last_opcode;
    __u64 last_ip; __u64 last_dp; __u8 xmm[16][16]; __u32 mxcsr; __u32 pad2;
};
struct kvm_msr_entry { __u32 index; __u32 reserved; __u64 data; };
struct kvm_msrs { __u32 nmsrs; __u32 pad; struct kvm_msr_entry entries[]; };
struct kvm_msr_list { __u32 nmsrs; __u32 indices[]; };
struct kvm_cpuid_entry2 {
    __u32 function, index, flags, eax, ebx, ecx, edx; __u32 padding[3];
};
struct kvm_cpuid2 { __u32 nent; __u32 padding; struct kvm_cpuid_entry2 entries[]; };
struct kvm_lapic_state { char regs[1024]; };
struct kvm_mp_state { __u32 mp_state; };
struct kvm_userspace_memory_region {
    __u32 slot; __u32 flags; __u64 guest_phys_addr; __u64 memory_size; __u64 userspace_addr;
};
struct kvm_irqfd { __u32 fd; __u32 gsi; __u32 flags; __u32 resamplefd; __u8 pad[16]; };
struct kvm_ioeventfd {
    __u64 datamatch; __u64 addr; __u32 len; __s32 fd; __u32 flags; __u8 pad[36];
};
struct kvm_pit_config { __u32 flags; __u32 pad[15]; };
struct kvm_irq_level { union { __u32 irq; __s32 status; }; __u32 level; };

struct kvm_xcr { __u32 xcr; __u32 reserved; __u64 value; };
struct kvm_xcrs { __u32 nr_xcrs; __u32 flags; struct kvm_xcr xcrs[16]; __u64 padding[16]; };
struct kvm_debugregs { __u64 db[4]; __u64 dr6; __u64 dr7; __u64 flags; __u64 reserved[9]; };
struct kvm_xsave { __u32 region[1024]; __u32 extra[]; };
struct kvm_vcpu_events {
    struct { __u8 injected; __u8 nr; __u8 has_error_code; __u8 pending; __u32 error_code; }
        exception;
    struct { __u8 injected; __u8 nr; __u8 soft; __u8 shadow; } interrupt;
    struct { __u8 injected; __u8 pending; __u8 masked; __u8 pad; } nmi;
    __u32 sipi_vector; __u32 flags;
    struct { __u8 smm; __u8 pending; __u8 smm_inside_nmi; __u8 latched_init; } smi;
    struct { __u8 pending; } triple_fault;
    __u8 reserved[26]; __u8 exception_has_payload; __u64 exception_payload;
};
struct kvm_pic_state {
    __u8 last_irr, irr, imr, isr, priority_add, irq_base, read_reg_select, poll;
    __u8 special_mask, init_state, auto_eoi, rotate_on_auto_eoi, special_fully_nested_mode;
    __u8 init4, elcr, elcr_mask;
};
struct kvm_ioapic_state {
    __u64 base_address; __u32 ioregsel; __u32 id; __u32 irr; __u32 pad; __u64 redirtbl[24];
};
struct kvm_irqchip {
    __u32 chip_id; __u32 pad;
    union { char dummy[512]; struct kvm_pic_state pic; struct kvm_ioapic_state ioapic; } chip;
};
struct kvm_pit_channel_state {
    __u32 count; __u16 latched_count; __u8 count_latched; __u8 status_latched; __u8 status;
    __u8 read_state; __u8 write_state; __u8 write_latch; __u8 rw_mode; __u8 mode; __u8 bcd;
    __u8 gate; int64_t count_load_time;
};
struct kvm_pit_state2 { struct kvm_pit_channel_state channels[3]; __u32 flags; __u32 reserved[9]; };
struct kvm_clock_data {
    __u64 clock; __u32 flags; __u32 pad0; __u64 realtime; __u64 host_tsc; __u32 pad[4];
};
struct kvm_enable_cap { __u32 cap; __u32 flags; __u64 args[4]; __u8 pad[64]; };

struct kvm_run {
    __u8 request_interrupt_window; __u8 immediate_exit; __u8 padding1[6];
    __u32 exit_reason; __u8 ready_for_interrupt_injection; __u8 if_flag; __u16 flags;
    __u64 cr8; __u64 apic_base;
    union {
        struct { __u64 hardware_exit_reason; } hw;
        struct { __u64 hardware_entry_failure_reason; __u32 cpu; } fail_entry;
        struct { __u32 exception; __u32 error_code; } ex;
        struct { __u8 direction; __u8 size; __u16 port; __u32 count; __u64 data_offset; } io;
        struct { __u64 phys_addr; __u8 data[8]; __u32 len; __u8 is_write; } mmio;
        struct { __u32 suberror; __u32 ndata; __u64 data[16]; } internal;
        struct { __u32 type; __u32 ndata; union { __u64 flags; __u64 data[16]; }; } system_event;
        char padding[256];
    };
    __u64 kvm_valid_regs; __u64 kvm_dirty_regs;
    union { char padding[2048]; } s;
};

int ioctl(int fd, unsigned long request, ...);
void *mmap(void *addr, size_t length, int prot, int flags, int fd, long offset);
int munmap(void *addr, size_t length);
"""

ffi = cffi.FFI()
ffi.cdef(_CDEF)
# The process's own symbols: libc is always loaded into CPython.
lib: Any = ffi.dlopen(None)
