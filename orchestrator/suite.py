"""``schedlab test``: schedlab's own test suite, through pytest.

The ``./schedlab`` launcher runs this same pytest line itself (it skips importing the CLI,
for speed); this command is what ``--help`` describes, and what an installed ``schedlab``
runs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from .cli_options import fail

__all__ = ("QUICK_MARKS", "has_paths", "pytest_argv", "suite_cmd")

#: What ``--quick`` adds: the slow tiers (3 and 4) boot real kernels.
QUICK_MARKS = ("-m", "not slow")
_ROOT = Path(__file__).resolve().parents[1]


def has_paths(args: tuple[str, ...] | list[str]) -> bool:
    """Whether ``args`` name a test path (``file.py``, ``dir``, ``file.py::test``) that exists
    relative to the caller's directory (then pytest runs there, not in this tree)."""
    return any(not a.startswith("-") and os.path.exists(a.split("::", 1)[0]) for a in args)


def pytest_argv(quick: bool, args: tuple[str, ...] | list[str]) -> list[str]:
    """The pytest command line for ``schedlab test [--quick] ARGS``."""
    return [sys.executable, "-m", "pytest", *(QUICK_MARKS if quick else ()), *args]


@click.command(
    "test",
    short_help="Run schedlab's own test suite (pytest).",
    context_settings={"ignore_unknown_options": True, "help_option_names": ["-h", "--help"]},
)
@click.option(
    "--quick",
    is_flag=True,
    help="Run only tiers 1 and 2 (unit tests, micro-guests): pytest -m 'not slow'.",
)
@click.argument("pytest_args", nargs=-1, type=click.UNPROCESSED)
def suite_cmd(quick: bool, pytest_args: tuple[str, ...]) -> None:
    """Run schedlab's test suite with pytest: all four tiers, or --quick for the fast ones.

    Every other argument goes to pytest unchanged: a path, -k EXPR, -x, -q, ...
    Put pytest's own -h/--help after "--" (schedlab test -- --help).
    A test that lacks a prerequisite skips locally and fails under CI=true.
    A path runs there: your own schedlab tests (schedlab_test, see the README).

    \b
    schedlab test --quick
    schedlab test tests/unit/orchestrator -k engine -q
    schedlab test ~/my-tests/test_mine.py --junitxml=junit.xml
    """
    if not has_paths(pytest_args):
        if not (_ROOT / "tests").is_dir():
            fail(
                f"no tests/ beside {_ROOT / 'orchestrator'}: the test suite ships with the "
                "source tree only (give a test file to run your own)"
            )
        os.chdir(_ROOT)  # this tree's suite; given paths are the caller's
    if not quick and not has_paths(pytest_args):
        from .suite_phases import main as phases  # the whole suite: two phases

        sys.exit(phases(list(pytest_args)))
    argv = pytest_argv(quick, pytest_args)
    os.execv(argv[0], argv)
