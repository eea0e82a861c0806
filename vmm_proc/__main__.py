"""``python -m vmm_proc --config FILE --ctl EP --pub EP``: one VM, served on the bus."""

from __future__ import annotations

import argparse
import logging
import sys

import msgpack

from schedlab_shared.exitcodes import ProcExit
from schedlab_shared.parentdeath import die_with_parent
from schedlab_shared.process_exit import exit_now
from schedlab_shared.profiling import maybe_profile
from schedlab_shared.vm_config import VmConfig

from .engines.base import EngineError


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vmm_proc", description=__doc__)
    ap.add_argument("--config", required=True, help="msgpack file holding a VmConfig map")
    ap.add_argument("--ctl", required=True, help="control endpoint to bind (ROUTER)")
    ap.add_argument("--pub", required=True, help="event endpoint to bind (PUB)")
    ap.add_argument("--linger", type=float, default=600.0, help="seconds to serve after VM exit")
    args = ap.parse_args(argv)
    die_with_parent()
    logging.basicConfig(level=logging.INFO, format="vmm_proc %(levelname)s %(message)s")
    try:
        with open(args.config, "rb") as f:
            config = VmConfig.from_dict(msgpack.unpack(f, raw=False))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"vmm_proc: bad config {args.config}: {exc}", file=sys.stderr)
        return ProcExit.CONFIG
    from .service import VmmService

    try:
        with maybe_profile("vmm_proc"):
            return VmmService(config, args.ctl, args.pub, args.linger).run()
    except EngineError as exc:
        print(f"vmm_proc: {exc}", file=sys.stderr)
        return ProcExit.ENGINE


if __name__ == "__main__":
    exit_now(main())
