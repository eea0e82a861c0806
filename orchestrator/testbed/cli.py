"""``schedlab testbed -- CMD ...``: run CMD inside the KVM-in-TCG testbed.

Exit status: CMD's own; 2 with one ``schedlab testbed: ...`` line on stderr when the testbed
itself failed (L1 did not boot, kvm_amd did not load, timeout); 130/143 on SIGINT/SIGTERM.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from orchestrator.testbed.job import JobError
from orchestrator.testbed.l1kernel import L1KernelError
from orchestrator.testbed.qemu_argv import TCG_THREADS
from orchestrator.testbed.run import DEFAULT_CPUS, TestbedError, _Terminated, run_in_testbed

__all__ = ("EXIT_INFRA", "main", "testbed")

#: Exit status for a testbed (not CMD) failure.
EXIT_INFRA = 2


def _error(message: str) -> None:
    click.echo(f"schedlab testbed: {message}", err=True)


@click.command(
    "testbed",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.option("--timeout", type=float, default=1800.0, show_default=True,
              help="Seconds for the whole run, L1 boot included.")  # fmt: skip
@click.option("--mem", "mem_mib", type=int, default=4096, show_default=True, help="L1 memory, MiB.")
@click.option(
    "--cpus",
    type=int,
    default=DEFAULT_CPUS,
    show_default=True,
    help="L1 vCPUs (2 is faster, but multi-threaded TCG can crash L1's kernel).",
)
@click.option("--share", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="Writable project tree [default: the cwd's git top-level].")  # fmt: skip
@click.option("--tcg-threads", type=click.Choice(TCG_THREADS), default=None,
              help="QEMU TCG threading [default: $SCHEDLAB_TESTBED_TCG_THREADS or multi].")  # fmt: skip
@click.option("--keep-log", is_flag=True, help="Keep L1's console log and print its path.")
@click.option("--stats", is_flag=True, help="Print L1 boot time and run duration to stderr.")
@click.argument("cmd", nargs=-1, type=click.UNPROCESSED, required=True)
def testbed(
    timeout: float, mem_mib: int, cpus: int, share: Path | None, tcg_threads: str | None,
    keep_log: bool, stats: bool, cmd: tuple[str, ...],
) -> None:  # fmt: skip
    """Run CMD on this machine's tree inside a QEMU TCG VM whose /dev/kvm behaves like hardware KVM.

    The project tree and ~/.cache/schedlab are writable inside; the rest of / is read-only;
    /tmp is private. CMD's stdout and stderr stream live; its exit status is ours.
    """
    try:
        result = run_in_testbed(
            list(cmd), timeout=timeout, mem_mib=mem_mib, cpus=cpus, share=share,
            keep_log=keep_log, tcg_threads=tcg_threads,
        )  # fmt: skip
    except TestbedError as exc:
        _error(str(exc) + (f" (L1 console log: {exc.console_log})" if exc.console_log else ""))
        sys.exit(EXIT_INFRA)
    except (JobError, L1KernelError, FileNotFoundError, ValueError) as exc:
        _error(str(exc))
        sys.exit(EXIT_INFRA)
    except KeyboardInterrupt:
        _error("interrupted; L1 stopped")
        sys.exit(130)
    except _Terminated:
        _error("terminated; L1 stopped")
        sys.exit(143)
    if keep_log and result.console_log is not None:
        _error(f"L1 console log: {result.console_log}")
    if stats:
        boot = "?" if result.l1_boot_s is None else f"{result.l1_boot_s:.1f}"
        _error(f"L1 boot {boot} s, run {result.duration_s:.1f} s, exit {result.exit_code}")
    sys.exit(result.exit_code)


def main() -> None:
    """Entry point of ``python -m orchestrator.testbed``."""
    testbed.main(prog_name="python -m orchestrator.testbed")
