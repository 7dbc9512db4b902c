"""Every ``mfm-store`` command is documented where a user looks: an example at the end of its
``--help`` and a line in the README's Command line section (issue 13 §6)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from helpers.cli import cli, cli_all, out

from mfm_store.cli import build_parser

README = Path(__file__).parent.parent / "README.md"


def _commands() -> list[str]:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sorted(sub.choices)


def _readme_section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("\n## Command line\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end >= 0 else None]


def test_the_commands_are_the_documented_ones() -> None:
    assert {"demo", "runs", "show", "facts", "artifact", "verify", "export", "import",
            "backup", "gc", "stats"} <= set(_commands())


def test_every_command_has_an_example_in_its_help() -> None:
    commands = _commands()
    for command, result in zip(commands, cli_all(*([c, "--help"] for c in commands)),
                               strict=True):
        assert result.returncode == 0, command
        assert f"example:\n  mfm-store {command}" in out(result), command


def test_every_command_has_a_line_in_the_readme() -> None:
    section = _readme_section()
    documented = set(re.findall(r"^mfm-store (\w+)", section, flags=re.MULTILINE))
    assert documented == set(_commands())


def test_the_top_level_help_lists_every_command_and_ends_with_examples() -> None:
    result = cli("--help")
    assert result.returncode == 0
    text = out(result)
    listed = set(re.findall(r"^    (\w+)\s{2,}\S", text, flags=re.MULTILINE))
    assert listed == set(_commands())
    assert "\nexample:\n  mfm-store " in text


def test_every_readme_command_line_names_a_real_command_and_its_options() -> None:
    """Each ``mfm-store X ...`` line of the README's section parses (``--help`` aside, the
    options it shows exist), so the documented lines cannot drift from the parser."""
    parser = build_parser()
    for line in re.findall(r"^(mfm-store \w+[^#\n]*)", _readme_section(), flags=re.MULTILINE):
        words = line.split()[1:]
        options = [w.split("=")[0] for w in words if w.startswith("--")]
        sub = _subparser(parser, words[0])
        known = {o for action in sub._actions for o in action.option_strings}
        assert set(options) <= known, line


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    found: argparse.ArgumentParser = sub.choices[name]
    return found
