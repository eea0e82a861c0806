from schedlab_shared import kernel_console

_PANIC = [
    b"[    1.0] Run /init as init process",
    b"[    2.0] Kernel Offset: disabled",
    b"[    2.0] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000009",
    b"[    2.1] ---[ end Kernel panic - not syncing: Attempted to kill init! ]---",
]


def test_the_intact_panic_line_wins_over_its_aftermath():
    assert kernel_console.panic_line(_PANIC) == _PANIC[2]


def test_a_garbled_panic_line_is_still_a_panic():
    garbled = [
        _PANIC[0],
        b"[ 2.0] Kernel pa\x1b[0mschedlab-init: hi",
        b"[    2.0] Kernel Offset: disabled",
    ]
    assert kernel_console.panic_line(garbled) == garbled[2]


def test_a_clean_boot_is_not_a_panic_and_a_clean_stop_is_marked():
    lines = [_PANIC[0], b"[    3.0] reboot: Power down"]
    assert kernel_console.panic_line(lines) is None
    assert kernel_console.CLEAN_MARK in lines[1] and not kernel_console.is_panic(lines[1])


def test_an_oops_is_not_a_panic_but_a_panic_is_an_oops():
    oops = b"[   13.2] Oops: int3: 0000 [#1] PREEMPT SMP NOPTI"
    assert kernel_console.is_oops(oops) and not kernel_console.is_panic(oops)
    assert all(kernel_console.is_oops(line) for line in _PANIC[1:])
