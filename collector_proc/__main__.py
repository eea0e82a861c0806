"""``python -m collector_proc``: collect one VM's streams into a run directory."""

from __future__ import annotations

import argparse
import logging
import sys

from schedlab_shared.parentdeath import die_with_parent
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
    args = ap.parse_args(argv)
    die_with_parent()
    logging.basicConfig(level=logging.INFO, format="collector_proc %(levelname)s %(message)s")
    from .service import Collector

    with maybe_profile("collector_proc"):
        return Collector(
            args.vm_id, args.vm_ctl, args.vm_pub, args.run_dir, args.ctl, args.pub, args.grace
        ).run()


if __name__ == "__main__":
    sys.exit(main())
