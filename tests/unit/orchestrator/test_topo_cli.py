import json

from click.testing import CliRunner

from orchestrator.cli import cli


def test_topo_list_json_has_every_preset_and_engine_verdicts() -> None:
    r = CliRunner().invoke(cli, ["topo", "list", "--json"])
    assert r.exit_code == 0, r.output
    rows = {p["name"]: p for p in json.loads(r.output)["presets"]}
    assert len(rows) == 24
    assert rows["tiny-2llc"]["spec"] == "1,2,2,1" and rows["tiny-2llc"]["engines"]["qemu"]
    assert rows["max-cpu"]["engines"] == {"kvm": False, "qemu": False}
    assert "x2APIC" in rows["max-cpu"]["refused"]["kvm"]


def test_topo_list_table_names_where_presets_cannot_run() -> None:
    r = CliRunner().invoke(cli, ["topo", "list"])
    assert r.exit_code == 0
    lines = r.output.splitlines()
    assert any(line.startswith("numa2-8llc ") and "none here" in line for line in lines)
    assert any(line.startswith("qemu:") and "TCG" in line for line in lines)


def test_run_refuses_a_bad_topology_in_one_line() -> None:
    r = CliRunner().invoke(cli, ["run", "--topology", "1n2l2c", "--engine", "qemu"])
    assert r.exit_code == 2
    err = r.stderr if hasattr(r, "stderr") else r.output
    assert "neither a preset" in err and len(err.strip().splitlines()) == 1


def test_run_refuses_a_large_preset_saying_why_for_its_engine() -> None:
    r = CliRunner().invoke(cli, ["run", "--topology", "large-4llc", "--engine", "qemu"])
    assert r.exit_code == 2
    err = r.stderr if hasattr(r, "stderr") else r.output
    assert "--topology large-4llc" in err and "TCG" in err
