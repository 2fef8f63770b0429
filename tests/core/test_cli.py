"""The command line: help for every command, version, logging switches, resume."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from tamis import __version__
from tamis.cli import cli


def _walk(group: click.Group, ctx: click.Context, prefix: list[str]) -> list[list[str]]:
    paths = []
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        assert cmd is not None, f"{' '.join(prefix + [name])} is listed but not found"
        paths.append(prefix + [name])
        if isinstance(cmd, click.Group):
            sub = click.Context(cmd, info_name=name, parent=ctx)
            paths += _walk(cmd, sub, prefix + [name])
    return paths


COMMANDS = _walk(cli, click.Context(cli, info_name="tamis"), [])


def test_top_level_help_lists_the_domains() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in ("rec", "llm", "screen", "demo", "resume"):
        assert name in result.output


@pytest.mark.parametrize("path", COMMANDS, ids=[" ".join(p) for p in COMMANDS])
def test_every_command_has_working_help(path: list[str]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_console_entry_point_runs_as_module() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tamis", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "Usage: tamis" in out.stdout


def test_resume_of_a_non_run_directory_is_a_clean_error(tmp_path) -> None:
    result = CliRunner().invoke(cli, ["resume", str(tmp_path)])
    assert result.exit_code == 1
    assert "not a run directory" in result.output
