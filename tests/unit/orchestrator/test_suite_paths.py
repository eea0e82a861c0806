import subprocess
from pathlib import Path

from orchestrator.suite import has_paths

ROOT = Path(__file__).resolve().parents[3]


def test_a_given_test_path_is_the_callers(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "test_mine.py").write_text("")
    monkeypatch.chdir(tmp_path)
    assert has_paths(["test_mine.py", "-q"])
    assert has_paths(["test_mine.py::test_x"])
    assert not has_paths(["-k", "engine", "--quick"])
    assert not has_paths(["-m", "not slow"])


def test_the_launcher_keeps_a_relative_path_relative_to_the_caller() -> None:
    # The launcher's path check, extracted: bash's view of the same rule as has_paths.
    script = (ROOT / "schedlab").read_text()
    assert "has_path=0" in script and '[ $has_path = 1 ] || cd "$here"' in script
    out = subprocess.run(
        ["bash", "-c", 'a=tests/unit::x; [[ "$a" != -* && -e "${a%%::*}" ]] && echo path'],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.stdout.strip() == "path"
