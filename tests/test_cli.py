"""The command line: help, bad arguments (exit 2, one-line reason, nothing written)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tala_ray.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def test_help_lists_commands():
    result = run_cli("--help")
    assert result.returncode == 0
    assert "data" in result.stdout


@pytest.mark.parametrize("group", ["data"])
def test_every_group_has_help(group):
    result = run_cli(group, "--help")
    assert result.returncode == 0 and "Commands" in result.stdout


@pytest.mark.parametrize("value", ["0", "-5"])
def test_generate_rejects_non_positive_sizes(value, tmp_path):
    out = tmp_path / "w"
    result = run_cli("data", "generate", "--applicants", value, "--out", str(out))
    assert result.returncode == 2
    assert "--applicants" in result.stderr
    assert not out.exists()


def test_generate_refuses_a_file_as_output(tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("keep me")
    result = run_cli("data", "generate", "--applicants", "10", "--out", str(target))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == f"error: output '{target}' is a file; give a directory"
    assert target.read_text() == "keep me"


def test_generate_refuses_non_empty_output_without_overwrite(tmp_path):
    (tmp_path / "existing.txt").write_text("keep me")
    result = run_cli("data", "generate", "--applicants", "10", "--out", str(tmp_path))
    assert result.returncode == 2
    assert "--overwrite" in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["existing.txt"]


def test_unknown_option_exits_2():
    result = run_cli("data", "generate", "--bogus")
    assert result.returncode == 2
    assert "No such option" in result.stderr
