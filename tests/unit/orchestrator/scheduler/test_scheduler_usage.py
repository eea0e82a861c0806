"""Usage-text parsing: the examples' getopt layout, clap's layout, help_fmt from C source."""

from orchestrator.scheduler.usage import help_from_source, parse_usage

QMAP = """A simple five-level FIFO queue sched_ext scheduler.

See the top-level comment in .bpf.c for more details.

Usage: scx_qmap [-s SLICE_US] [-e COUNT] [-t COUNT] [-T COUNT] [-l COUNT] [-b COUNT]
       [-N COUNT] [-P] [-M] [-H] [-c CG_PATH] [-d PID] [-D LEN] [-S] [-p] [-I]
       [-F COUNT] [-v]

  -s SLICE_US   Override slice duration
  -e COUNT      Trigger scx_bpf_error() after COUNT enqueues
  -t COUNT      Stall every COUNT'th user thread
  -P            Print out DSQ content and event counters to trace_pipe every second
  -C MODE       cid-override test (shuffle|bad-dup|bad-range)
  -v            Print libbpf debug messages
  -h            Display this help and exit
"""

CLAP = """Usage: scx_lavd [OPTIONS]

Options:
      --autopilot
          Automatically decide the scheduler's power mode
  -s, --slice-max-us <SLICE_MAX_US>
          Maximum scheduling slice duration in microseconds
          [default: 5000]
  -v, --verbose...  Enable verbose output
      --log-level=LEVEL  Set the log level
  -h, --help
          Print help
"""


def test_getopt_layout():
    u = parse_usage(QMAP)
    assert u.summary == "A simple five-level FIFO queue sched_ext scheduler."
    assert u.synopsis.startswith("scx_qmap [-s SLICE_US]") and u.synopsis.endswith(
        "[-F COUNT] [-v]"
    )
    flags = [(o.short, o.arg) for o in u.options]
    assert flags == [
        ("-s", "SLICE_US"),
        ("-e", "COUNT"),
        ("-t", "COUNT"),
        ("-P", None),
        ("-C", "MODE"),
        ("-v", None),
        ("-h", None),
    ]
    assert u.option("-e").help == "Trigger scx_bpf_error() after COUNT enqueues"
    assert u.option("-P").help.endswith("every second")
    assert u.option("-x") is None


def test_clap_layout_with_continuations():
    u = parse_usage(CLAP)
    assert u.synopsis == "scx_lavd [OPTIONS]"
    by = {o.long: o for o in u.options}
    assert set(by) == {"--autopilot", "--slice-max-us", "--verbose", "--log-level", "--help"}
    assert by["--autopilot"].short is None
    assert by["--autopilot"].help == "Automatically decide the scheduler's power mode"
    assert by["--slice-max-us"].short == "-s" and by["--slice-max-us"].arg == "SLICE_MAX_US"
    assert by["--slice-max-us"].help.endswith("microseconds [default: 5000]")
    assert by["--verbose"].help == "Enable verbose output"
    assert by["--log-level"].arg == "LEVEL"
    assert u.option("-h").long == "--help"


def test_text_without_options():
    u = parse_usage("[SCX_BUG] scx_userland.c:350 (Invalid argument)\nFailed to set scheduler\n")
    assert u.options == () and u.synopsis == ""
    assert parse_usage("").summary == ""


C_SOURCE = r"""
#include <stdio.h>
const char help_fmt[] =
"A minimal userland sched_ext scheduler.\n"
"\n"
"Try to reduce `sysctl kernel.pid_max` if this program triggers \"OOMs\".\n"
"\n"
"Usage: %s [-b BATCH] [-v]\n"
"\n"
"  -b BATCH      The number of tasks to batch when dispatching (default: 8)\n"
"  -v            Print libbpf debug messages (100%% quiet otherwise)\n";

static bool verbose;
"""


def test_help_from_source():
    text = help_from_source(C_SOURCE, "scx_userland")
    assert text.startswith("A minimal userland sched_ext scheduler.\n\n")
    assert 'triggers "OOMs".' in text and "100% quiet" in text
    u = parse_usage(text)
    assert u.synopsis == "scx_userland [-b BATCH] [-v]"
    assert [(o.short, o.arg) for o in u.options] == [("-b", "BATCH"), ("-v", None)]
    assert help_from_source("int main(void) { return 0; }", "x") is None
