"""The command line, as a user runs it: exit codes 0 ok, 1 findings, 2 usage."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from charter.cli.main import cli

ROOT = Path(__file__).parent.parent
ACME = str(ROOT / "examples" / "acme.charter")
AMENDMENT = str(ROOT / "examples" / "acme-amendment-4.amendment")
DIRECTORY = str(ROOT / "examples" / "acme-directory.yaml")


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(cli, list(args), input=input)


def test_check_acme_exits_0_from_a_real_process():
    done = subprocess.run([sys.executable, "-m", "charter", "check", ACME], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no findings" in done.stdout


def test_consolidate_acme_with_amendment_4_from_a_real_process():
    done = subprocess.run(
        [sys.executable, "-m", "charter", "consolidate", ACME, AMENDMENT, "--as-of", "2026-12-16"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "# Clause 2: replaced by amendment 4, in force since 2026-12-15." in out
    assert 'Clause 2. Members of group "support" may read "tickets/*" with MFA.' in out
    assert "# Clause 19: inserted by amendment 4, in force since 2026-12-15." in out
    assert 'Clause 19. Partner "acme-logistics"' in out
    assert "# Clause 15: struck by amendment 4, in force since 2026-12-15." in out
    assert "Clause 15." not in out.replace("# Clause 15:", "")


def test_consolidate_before_the_amendment_prints_the_original():
    result = run("consolidate", ACME, AMENDMENT, "--as-of", "2026-12-14")
    assert result.exit_code == 0
    assert 'Clause 15. Group "legacy-admins" is revoked.' in result.output
    assert "amendment 4" not in result.output


def test_consolidate_json():
    result = run("consolidate", ACME, AMENDMENT, "--as-of", "2026-12-16", "--json")
    data = json.loads(result.output)
    assert data["version"] == 4
    assert [s["number"] for s in data["struck"]] == [15]


def test_check_with_directory_and_amendment_is_clean():
    result = run("check", ACME, AMENDMENT, "--directory", DIRECTORY, "--today", "2026-11-24")
    assert result.exit_code == 0, result.output
    assert "2 files checked: no findings" in result.output


def test_check_reports_findings_with_caret_and_exits_1(tmp_path):
    bad = tmp_path / "bad.charter"
    bad.write_text('Charter "T".\n  Effective 2026-01-01.\n\nClause 1. Memebrs of group "sre" may read "x".\n')
    result = run("check", str(bad))
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0].startswith(f"{bad}:4:11: error (clause 1): expected the start of a clause")
    assert lines[1] == '  4 | Clause 1. Memebrs of group "sre" may read "x".'
    assert lines[2] == "  " + " " * len("4 | Clause 1. ") + "^" * len("Memebrs")
    assert lines[3] == '  hint: did you mean "Members"?'
    assert lines[-1] == "1 error, 0 warnings in 1 file"


def test_check_unknown_group_against_directory(tmp_path):
    doc = tmp_path / "t.charter"
    doc.write_text('Charter "T".\n  Effective 2026-01-01.\n\nClause 1. Members of group "sre-lead" may read "x".\n')
    result = run("check", str(doc), "--directory", DIRECTORY)
    assert result.exit_code == 1
    assert f'{doc}:4:11: warning (clause 1): unknown group "sre-lead"' in result.output
    assert 'hint: did you mean "sre-leads"?' in result.output


def test_usage_errors_exit_2(tmp_path):
    assert run("check", str(tmp_path / "missing.charter")).exit_code == 2
    assert run("check").exit_code == 2
    assert run("consolidate", ACME, "--as-of", "yesterday").exit_code == 2
    assert run("consolidate", AMENDMENT).exit_code == 2


def test_fmt_rewrites_and_check_mode(tmp_path):
    messy = tmp_path / "m.charter"
    messy.write_text('charter "T".  effective 2026-01-01.\nclause 1.   users MAY read    "x"  with mfa.\n')
    check_result = run("fmt", "--check", str(messy))
    assert check_result.exit_code == 1
    assert f"would reformat {messy}" in check_result.output
    assert run("fmt", str(messy)).exit_code == 0
    assert messy.read_text() == 'Charter "T".\n  Effective 2026-01-01.\n\nClause 1. Users may read "x" with MFA.\n'
    assert run("fmt", "--check", str(messy)).exit_code == 0


def test_fmt_stdin_to_stdout():
    result = run("fmt", "-", input='Charter "T". Effective 2026-01-01. Clause 1. Everyone must use MFA.')
    assert result.exit_code == 0
    assert result.output.endswith("Clause 1. Anyone authenticated must use MFA.\n")


def test_fmt_leaves_a_bad_file_untouched(tmp_path):
    bad = tmp_path / "b.charter"
    original = 'Charter "T".\n  Effective 2026-01-01.\nClause 1. Users may read.\n'
    bad.write_text(original)
    result = run("fmt", str(bad))
    assert result.exit_code == 1
    assert bad.read_text() == original


def test_installed_console_script():
    script = shutil.which("charter", path=str(Path(sys.executable).parent))
    assert script is not None, "the charter console script is installed next to the interpreter"
    done = subprocess.run([script, "--help"], capture_output=True, text=True)
    assert done.returncode == 0
    assert "consolidate" in done.stdout


def test_consolidate_refuses_an_amendment_the_checker_refuses(tmp_path):
    charter = tmp_path / "t.charter"
    charter.write_text(
        'Charter "T".\n  Effective 2026-01-01.\n  Amendments are approved by 2 members of group "security".\n\n'
        'Clause 1. Users may read "a".\n'
    )
    weak = tmp_path / "5.amendment"
    weak.write_text(
        'Amendment 5 to Charter "T".\n  Effective 2026-06-01.\n  Reason "r".\n'
        '  Approved by 1 member of group "security".\nStrike clause 1.\n'
    )
    result = run("consolidate", str(charter), str(weak), "--as-of", "2026-07-01")
    assert result.exit_code == 1
    assert "the charter requires at least 2" in result.output
    assert "Clause 1." not in result.output  # nothing of the version is printed
