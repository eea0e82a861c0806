"""``python -m collector_proc``: collect one VM's streams into a run directory."""

from __future__ import annotations

import argparse
import logging

from schedlab_shared.parentdeath import die_with_parent
from schedlab_shared.process_exit import exit_now
from schedlab_shared.profiling import maybe_profile


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="collector_proc", description=__doc__)
    ap.add_argument("--vm-id", required=True)
    ap.add_argument("--vm-ctl", required=True, help="the VMM's control endpoint")
    ap.add_argument("--vm-pub", required=True, help="the VMM's event endpoint")
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--ctl", required=True, help="control endpoint to bind")
    ap.add_argument("--pub", required=True, help="endpoint to bind for decoded guest messages")
    ap.add_argument("--grace", type=float, default=60.0, help="seconds the VMM may be unreachable")
    ap.add_argument(
        "--stop-when-complete",
        action="store_true",
        help="exit once the VM exited and every stream is drained (attached collectors)",
    )
    ap.add_argument("--store", default=None, help="forward the run dir to this schedlab collect")
    ap.add_argument("--store-key", default=None, help="the store's public key file")
    args = ap.parse_args(argv)
    die_with_parent()
    logging.basicConfig(level=logging.INFO, format="collector_proc %(levelname)s %(message)s")
    from .service import Collector

    with maybe_profile("collector_proc"):
        col = Collector(
            args.vm_id,
            args.vm_ctl,
            args.vm_pub,
            args.run_dir,
            args.ctl,
            args.pub,
            args.grace,
            stop_when_complete=args.stop_when_complete,
            store=args.store,
            store_key=args.store_key,
        )
        code = col.run()
    state = "complete" if col.cp.complete else "incomplete"
    logging.info("%s in %s (%s)", state, args.run_dir, code.name)
    return code


if __name__ == "__main__":
    exit_now(main())
