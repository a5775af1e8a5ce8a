"""The docs against what a reader runs: README's first two commands, where `remora` comes from,
and that every `remora VERB` shown in a shell block is a command the CLI has.

Shell blocks are the fenced ```sh / ```bash / ```shell / ```console ones. In a console block only
the `$ ` lines (and their `\\` continuations) are commands; in the others every line is, with
its `# comment` left out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.core import TyperGroup

from remora.cli import main
from remora.cli.main import COMMANDS, LazyGroup

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"),
               *(ROOT / "examples").glob("*/README.md")])
SHELLS = {"sh", "bash", "shell", "console"}
FENCE = re.compile(r"^\s*```\s*([\w-]*)")
REMORA = re.compile(r"(?:^|(?<=[\s(|;&`]))(?:\.venv/bin/)?remora((?:\s+[a-z][a-z-]*)+)")
ACTIVATION = re.compile(r"source \.venv/bin/activate|\.venv/bin:\$PATH")


@dataclass(frozen=True)
class Command:
    doc: Path
    line: int  # 1-based line of the command in the doc
    offset: int  # characters before that line
    text: str

    def where(self) -> str:
        name = self.doc.relative_to(ROOT) if self.doc.is_relative_to(ROOT) else self.doc
        return f"{name}:{self.line}: {self.text}"


def shell_commands(doc: Path) -> list[Command]:
    """The command lines of the doc's shell blocks, in order."""
    commands: list[Command] = []
    language: str | None = None  # inside a block: its language ("" when none is given)
    continued = False
    offset = 0
    for number, line in enumerate(doc.read_text().splitlines(keepends=True), start=1):
        fence = FENCE.match(line)
        if fence:
            language = fence.group(1) if language is None else None
            continued = False
        elif language in SHELLS:
            text = line.strip()
            if language != "console":
                text = "" if text.startswith("#") else text.split(" #", 1)[0].rstrip()
            elif continued or text.startswith("$ "):
                text = text.removeprefix("$ ")
            else:
                text = ""  # the output of the command above
            continued = text.endswith("\\")
            if text:
                commands.append(Command(doc, number, offset, text))
        offset += len(line)
    return commands


def remora_calls(command: Command) -> list[list[str]]:
    """Each `remora WORD WORD...` of a command line, as the words after `remora`."""
    return [match.group(1).split() for match in REMORA.finditer(command.text)]


def loaded_commands() -> dict[str, Any]:
    """The CLI's top-level commands, every module of main.COMMANDS loaded."""
    group = typer.main.get_group(main.app)
    assert isinstance(group, LazyGroup)
    for module in {module for module, _ in COMMANDS.values()}:
        group.load(module)
    return dict(group.commands)


def test_docs_are_found() -> None:
    names = {str(doc.relative_to(ROOT)) for doc in DOCS}
    assert {"README.md", "docs/proxy.md", "examples/ecommerce/README.md"} <= names


def test_readme_starts_with_make_run_and_make_test() -> None:
    commands = [command.text for command in shell_commands(ROOT / "README.md")]
    assert commands[:2] == ["make run", "make test"]


@pytest.mark.parametrize("doc", DOCS, ids=lambda doc: str(doc.relative_to(ROOT)))
def test_a_doc_says_where_remora_comes_from_before_its_first_remora_command(doc: Path) -> None:
    """`remora` is .venv/bin/remora: a reader who lands on any doc is told how it gets on the
    PATH (`source .venv/bin/activate` or `export PATH=$PWD/.venv/bin:$PATH`) before the doc
    first asks them to run it."""
    first = next((command for command in shell_commands(doc) if remora_calls(command)), None)
    if first is None:
        return
    before = doc.read_text()[:first.offset]
    assert ACTIVATION.search(before), (
        f"{first.where()}\n  comes before any `source .venv/bin/activate` (or "
        "`export PATH=\"$PWD/.venv/bin:$PATH\"`) in the doc")


def test_every_remora_verb_in_the_docs_is_a_command() -> None:
    """`remora VERB` (and `remora GROUP SUBCOMMAND`) shown in a shell block exists in the CLI."""
    commands = loaded_commands()
    unknown: list[str] = []
    seen = 0
    for doc in DOCS:
        for command in shell_commands(doc):
            for words in remora_calls(command):
                seen += 1
                found = commands.get(words[0])
                if found is None:
                    unknown.append(f"{command.where()}  (no command {words[0]!r})")
                elif (isinstance(found, TyperGroup) and len(words) > 1
                      and words[1] not in found.commands):
                    unknown.append(f"{command.where()}  (no {words[0]} {words[1]!r})")
    assert seen > 50  # the parsing found the docs' commands
    assert not unknown, "\n".join(unknown)


def test_the_parsing_of_shell_blocks(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text("\n".join([
        "`remora nothing` in prose is not a command",
        "```sh",
        "export PATH=\"$PWD/.venv/bin:$PATH\"",
        "TOKEN=$(remora auth token)   # remora is not run here",
        "remora proxy --controlplane http://x \\",
        "  --admin-port 1 2>/tmp/remora-cp.log & PROXY=$!",
        "```",
        "```console",
        "$ remora get vs",
        "... INFO remora controlplane on http://127.0.0.1:8848",
        "```",
        "```python",
        "remora python",
        "```",
    ]) + "\n")
    calls = [words for command in shell_commands(doc) for words in remora_calls(command)]
    assert calls == [["auth", "token"], ["proxy"], ["get", "vs"]]
