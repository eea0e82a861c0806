"""The inputs phase: what this run is asked to do.

Today the run spec comes from the kernel command line (``/proc/cmdline``); a host-to-guest
transfer after SYS_RDY replaces this function's body, not its callers.
"""

from __future__ import annotations

from guest.spec import RunSpec, parse_cmdline

TYPE_CHECKING = False
if TYPE_CHECKING:
    from guest.env import Env

__all__ = ("read_spec",)


def read_spec(env: Env) -> RunSpec:
    """The validated run spec.

    :raises SpecError: a bad or missing ``schedlab.*`` key.
    :raises OSError: ``/proc/cmdline`` unreadable.
    """
    with open(env.path("proc/cmdline")) as f:
        return parse_cmdline(f.read())
