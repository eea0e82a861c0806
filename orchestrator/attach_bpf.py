"""``schedlab attach RUN_DIR bpf ...``: the live guest's BPF programs and maps, through the
run's monitor (it reads guest memory; see :mod:`schedlab_shared.bus.monitor`).

    schedlab attach RUN_DIR bpf progs            # ID, type, name, instructions, verified
    schedlab attach RUN_DIR bpf maps             # ID, type, name, key/value size, entries
    schedlab attach RUN_DIR bpf read MAP [KEY]   # values decoded with the map's BTF (JSON)
    schedlab attach RUN_DIR bpf write MAP KEY FIELD=VALUE   # an ARRAY field, read back
"""

from __future__ import annotations

import json
from typing import Any

import click

from schedlab_shared.bus import monitor as monitor_proto

__all__ = ("bpf_group",)


def _monitor_ctl(ep: Any) -> str:  # noqa: ANN401 - the attach group's live run
    from .attach import _fail

    if not ep.monitors:
        _fail("the run has no monitor to read the guest's BPF state (it ran with --monitors 0)")
    return ep.monitors[0][0]


def _ask(ep: Any, msg: Any) -> Any:  # noqa: ANN401
    from .attach import _request

    return _request(_monitor_ctl(ep), msg)


def _bad(message: str) -> None:
    from .attach import _fail

    _fail(message)


@click.group("bpf")
def bpf_group() -> None:
    """The live guest's BPF programs and maps (read from guest memory by the run's monitor)."""


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(
            c.rjust(w) if c.isdigit() else c.ljust(w) for c, w in zip(r, widths, strict=True)
        ).rstrip()
        for r in rows
    )


@bpf_group.command("progs")
@click.option("--json", "as_json", is_flag=True, help="print the list as JSON")
@click.pass_obj
def progs_cmd(ep: Any, as_json: bool) -> None:  # noqa: ANN401
    """Loaded programs: ID, type, name, instructions, verified instructions (and runs and
    run time while kernel.bpf_stats_enabled is on)."""
    reply = _ask(ep, monitor_proto.BpfList("progs"))
    if as_json:
        click.echo(json.dumps({"stats_enabled": reply.stats_enabled, "progs": reply.items}))
        return
    rows = [["ID", "TYPE", "NAME", "INSNS", "VERIFIED", "RUNS", "RUN_NS"]]
    for p in reply.items:
        rows.append(
            [str(p.get("id", "?")), p.get("type", "-"), p.get("name", p.get("error", "?"))]
            + [str(p[k]) if k in p else "-" for k in ("insns", "verified_insns", "run_cnt")]
            + [str(p.get("run_time_ns", "-"))]
        )
    click.echo(_table(rows))
    if not reply.stats_enabled:
        click.echo("(run counts need sysctl kernel.bpf_stats_enabled=1 in the guest)")


@bpf_group.command("maps")
@click.option("--json", "as_json", is_flag=True, help="print the list as JSON")
@click.pass_obj
def maps_cmd(ep: Any, as_json: bool) -> None:  # noqa: ANN401
    """Maps: ID, type, name, key and value sizes, max entries."""
    reply = _ask(ep, monitor_proto.BpfList("maps"))
    if as_json:
        click.echo(json.dumps({"maps": reply.items}))
        return
    rows = [["ID", "TYPE", "NAME", "KEY", "VALUE", "MAX_ENTRIES", "BTF"]]
    for m in reply.items:
        rows.append(
            [str(m.get("id", "?")), m.get("type", "-"), m.get("name", m.get("error", "?"))]
            + [str(m[k]) if k in m else "-" for k in ("key_size", "value_size", "max_entries")]
            + ["yes" if m.get("btf") else "no"]
        )
    click.echo(_table(rows))


@bpf_group.command("read")
@click.argument("map_name", metavar="MAP")
@click.argument("key", required=False, default="")
@click.pass_obj
def read_cmd(ep: Any, map_name: str, key: str) -> None:  # noqa: ANN401
    """Print MAP's entries (or the one at KEY: an index or an integer key) as JSON, decoded
    with the map's BTF. MAP is a name (scx_qmap.bss) or an ID."""
    if key:
        try:
            monitor_proto.parse_map_key(key)
        except ValueError as exc:
            _bad(f"bpf read: {exc}")
    reply = _ask(ep, monitor_proto.BpfRead(map_name, key))
    click.echo(json.dumps({"map": reply.map, "entries": reply.entries}, indent=2))


@bpf_group.command("write")
@click.argument("map_name", metavar="MAP")
@click.argument("key")
@click.argument("assignment", metavar="FIELD=VALUE")
@click.pass_obj
def write_cmd(ep: Any, map_name: str, key: str, assignment: str) -> None:  # noqa: ANN401
    """Store VALUE in FIELD of ARRAY map MAP's element KEY in guest memory and read it back
    (e.g. `bpf write scx_qmap.data 0 stall_user_nth=0`). FIELD is a dotted path: a
    variable, struct members, array indexes."""
    try:
        monitor_proto.parse_map_key(key)
        monitor_proto.parse_field_value(assignment)
    except ValueError as exc:
        _bad(f"bpf write: {exc}")
    r = _ask(ep, monitor_proto.BpfWrite(map_name, key, assignment))
    click.echo(f"{r.map}[{r.key}].{r.field}: {r.previous} -> {r.value} (read back)")
