"""The whole suite in two phases, so the testbed's run overlaps the quick tiers.

The in-testbed test (``TESTBED_TEST``) boots one L1 with one vCPU and runs every
``in_testbed`` test there, 10-12 minutes on one host core, while the other core would sit
idle. Phase 1 runs it beside the quick tiers (``-m "not slow"``: unit tests and
micro-guests, one core); phase 2 runs the other slow tests (tier 3, which boot TCG guests
with two vCPUs and want both cores) alone. The testbed's output is kept in a file and printed
when it ends. Any selection of the caller's (a path, ``-k``, ``-m``, ``--quick``, ...) runs
plain pytest instead: this is only the order of the whole suite.

Exit status: the first of pytest's failing ones (1 failed tests, 2 interrupted, 3-4
internal or usage errors) over the phases; 0 when every phase passed; 130 on Ctrl-C, once
every child stopped.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ("SELECTING", "TESTBED_TEST", "main", "phased")

TESTBED_TEST = "tests/integration/testbed/test_in_testbed_suite.py"
#: Options that select tests (or change how they run): with any, plain pytest runs.
SELECTING = ("-m", "-k", "-n", "--lf", "--ff", "--sw", "--deselect", "--ignore", "--co",
             "--collect-only", "--last-failed", "--failed-first", "--stepwise", "-x",
             "--exitfirst", "--pdb", "--trace")  # fmt: skip
_NO_TESTS = 5  # pytest: nothing collected (a phase may select nothing)


def phased(args: list[str] | tuple[str, ...]) -> bool:
    """Whether ``schedlab test ARGS`` (no ``--quick``) is the whole suite, to run in phases:
    no test path (an existing file or directory) and no selecting option."""
    if any(not a.startswith("-") and os.path.exists(a.split("::", 1)[0]) for a in args):
        return False
    return not any(a.split("=", 1)[0] in SELECTING for a in args)


def _pytest(*args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", *args]


def _combine(codes: list[int]) -> int:
    failing = [c for c in codes if c not in (0, _NO_TESTS)]
    if failing:
        return failing[0]
    return _NO_TESTS if codes and all(c == _NO_TESTS for c in codes) else 0


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the child's process group (the testbed tears its L1 down on it), then wait."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def main(args: list[str]) -> int:
    """Run the phases with the caller's pytest options ``args`` (or, for a selection, pytest
    itself in their place); return the exit status."""
    if not phased(args):
        os.execv(sys.executable, _pytest(*args))
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryFile(prefix="schedlab-testbed-") as log:
        testbed = subprocess.Popen(
            _pytest(*args, TESTBED_TEST), cwd=root, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches it through _stop, once
        )  # fmt: skip
        codes: list[int] = []
        try:
            print(f"schedlab test: phase 1: the quick tiers, beside {TESTBED_TEST}", flush=True)
            codes.append(subprocess.call(_pytest(*args, "-m", "not slow"), cwd=root))
            print(f"schedlab test: waiting for {TESTBED_TEST}", flush=True)
            codes.append(testbed.wait())
            log.seek(0)
            sys.stdout.flush()
            sys.stdout.buffer.write(log.read())
            sys.stdout.buffer.flush()
            print("schedlab test: phase 2: the other slow tiers", flush=True)
            codes.append(
                subprocess.call(_pytest(*args, "-m", "slow", "--ignore", TESTBED_TEST), cwd=root)
            )
        except KeyboardInterrupt:
            _stop(testbed)
            return 130
        finally:
            _stop(testbed)
    return _combine(codes)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
