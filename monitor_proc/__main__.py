"""``python -m monitor_proc``: sample a live VM's runqueues from the host."""

from __future__ import annotations

import argparse
import json
import logging

from schedlab_shared.parentdeath import die_with_parent
from schedlab_shared.process_exit import exit_now
from schedlab_shared.profiling import maybe_profile


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="monitor_proc", description=__doc__)
    ap.add_argument("--vm-id", required=True)
    ap.add_argument("--vm-ctl", required=True)
    ap.add_argument("--collector-ctl", required=True)
    ap.add_argument("--vmlinux", required=True, help="the guest kernel's ELF (BTF + kallsyms)")
    ap.add_argument("--system-map", default=None)
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--ctl", required=True)
    ap.add_argument("--pub", required=True)
    ap.add_argument("--name", default="monitor", help="instance name (several may attach)")
    ap.add_argument("--interval", type=float, default=0.1, help="seconds between samples")
    ap.add_argument("--max-samples", type=int, default=0, help="stop after this many (0: VM exit)")
    ap.add_argument(
        "--watchdog-timeout",
        type=float,
        default=None,
        help="seconds: shorten the attached sched_ext scheduler's watchdog to this",
    )
    ap.add_argument("--hz", type=int, default=0, help="the guest kernel's CONFIG_HZ")
    ap.add_argument("--thresholds", default="", help="JSON: monitor threshold overrides")
    ap.add_argument(
        "--dump-on-violation",
        action="store_true",
        help="ask the guest for a SysRq-D dump when a threshold is violated",
    )
    args = ap.parse_args(argv)
    if args.watchdog_timeout is not None and args.hz <= 0:
        ap.error("--watchdog-timeout needs --hz (the guest kernel's CONFIG_HZ)")
    die_with_parent()
    logging.basicConfig(level=logging.INFO, format="monitor_proc %(levelname)s %(message)s")
    from .service import Monitor

    with maybe_profile(f"monitor_proc-{args.name}"):
        mon = Monitor(
            vm_id=args.vm_id,
            vm_ctl=args.vm_ctl,
            collector_ctl=args.collector_ctl,
            vmlinux=args.vmlinux,
            run_dir=args.run_dir,
            ctl=args.ctl,
            pub=args.pub,
            name=args.name,
            interval_s=args.interval,
            system_map=args.system_map,
            max_samples=args.max_samples,
            watchdog_timeout_s=args.watchdog_timeout,
            hz=args.hz,
            thresholds=json.loads(args.thresholds) if args.thresholds else None,
            dump_on_violation=args.dump_on_violation,
        )
        code = mon.run()
    logging.info("%s: %d samples, %d errors (%s)", args.name, mon.samples, mon.errors, code.name)
    return code


if __name__ == "__main__":
    exit_now(main())
