"""``python -m orchestrator.testbed -- CMD ...`` (same as ``schedlab testbed``)."""

from orchestrator.testbed.cli import main

main()
