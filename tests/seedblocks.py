"""Code blocks of the seed tutorials (../shared/seeds/*.txt) that may hold YAML, with their lines.

The seeds are Markdown-ish Chinese tutorials. YAML shows up in four shapes, each handled here:

- fenced blocks (```yaml, ```yml, or a bare ``` whose text has `apiVersion:`), possibly indented
  inside a list item (the fence's indentation is removed);
- here-documents in any block (`cat > x.yaml << 'EOF'` ... `EOF`, `kubectl apply -f - <<EOF`),
  when the command writes a .yaml/.yml file or feeds kubectl;
- inside a fenced block, a line that is only a file name (`deployment-probes.yaml`) captions the
  file that follows: it starts a new block;
- seeds with no fences at all (001) print their code flush left: a block there is a run of lines
  that are not prose (prose = a numbered heading, a line starting with a CJK character, or a
  `- ` bullet followed by CJK text).

A fence line with an info string (```bash) always opens a new block, even inside one: the seeds
forget closing fences (004 near line 2925) and nest them (002's ```markdown then ```yaml).

A block's `line` is the seed line of its first text line, so `padded` text (blank lines in front)
gives loader issues with the seed's own line numbers.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SEEDS_DIR = Path(os.environ.get("REMORA_SEEDS", REPO.parent / "shared" / "seeds"))

YAML_LANGS = frozenset({"yaml", "yml"})
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<ticks>`{3,})(?P<info>.*)$")
_HEREDOC = re.compile(r"<<-?\s*(?P<quote>['\"]?)(?P<tag>\w+)(?P=quote)")
_CAPTION = re.compile(r"^[\w.-]+\.ya?ml\s*$")
_CJK = re.compile(r"[\u3000-\u9fff\uff00-\uffef]")
_HEADING = re.compile(r"^\d+(\.\d+)*\.?\s")
_ASCII_KEY = re.compile(r"^(#|(- )?[A-Za-z0-9_.\-/\"']+:(\s|$))")


@dataclass(frozen=True, slots=True)
class Block:
    """One candidate YAML text from a seed: where it starts and how it was written."""

    seed: str  # file name, e.g. "004_025b8d0e91e55d5b.txt"
    line: int  # 1-based seed line of the block's first line of text
    shape: str  # "fence:yaml", "fence:", "heredoc", "caption", "flush"
    text: str

    @property
    def id(self) -> str:
        """`004:3477`: the seed's number and the block's first line."""
        return f"{self.seed[:3]}:{self.line}"

    @property
    def padded(self) -> str:
        """The text behind blank lines, so that line numbers in issues are the seed's."""
        return "\n" * (self.line - 1) + self.text


@dataclass(frozen=True, slots=True)
class _Fenced:
    line: int  # first text line
    info: str
    lines: list[str]


def seed_files() -> list[Path]:
    return sorted(SEEDS_DIR.glob("[0-9]*.txt"))


def blocks(path: Path) -> list[Block]:
    """Every candidate YAML block of one seed, in order."""
    lines = path.read_text(encoding="utf-8").split("\n")
    fenced = list(_fenced(lines))
    if not fenced:
        return list(_flush_blocks(path.name, lines))
    out: list[Block] = []
    for block in fenced:
        lang = block.info.split()[0].lower() if block.info.split() else ""
        text = "\n".join(block.lines)
        out.extend(_heredocs(path.name, block))
        if lang in YAML_LANGS or (lang == "" and re.search(r"(?m)^\s*apiVersion:", text)):
            out.extend(_captioned(path.name, block, f"fence:{lang}"))
    return sorted(out, key=lambda b: b.line)


def all_blocks() -> list[Block]:
    return [block for path in seed_files() for block in blocks(path)]


def _fenced(lines: list[str]) -> Iterator[_Fenced]:
    current: _Fenced | None = None
    indent = ""
    for number, line in enumerate(lines, 1):
        match = _FENCE.match(line)
        if match and (current is None or match["info"].strip()):
            if current is not None:  # an opening fence inside a block: the last one was unclosed
                yield current
            current, indent = _Fenced(number + 1, match["info"].strip(), []), match["indent"]
        elif match and current is not None:
            yield current
            current = None
        elif current is not None:
            current.lines.append(line[len(indent):] if line.startswith(indent) else line.lstrip())
    if current is not None:
        yield current


def _captioned(seed: str, block: _Fenced, shape: str) -> Iterator[Block]:
    """Split a fenced block at caption lines (a bare file name such as `hpa.yaml`)."""
    start, chunk, caption = block.line, [], False
    for offset, line in enumerate(block.lines):
        if _CAPTION.match(line):
            if any(text.strip() for text in chunk):
                yield Block(seed, start, "caption" if caption else shape, "\n".join(chunk))
            start, chunk, caption = block.line + offset + 1, [], True
        else:
            chunk.append(line)
    if any(text.strip() for text in chunk):
        yield Block(seed, start, "caption" if caption else shape, "\n".join(chunk))


def _heredocs(seed: str, block: _Fenced) -> Iterator[Block]:
    """Here-documents that write a YAML file or feed kubectl."""
    lines = block.lines
    position = 0
    while position < len(lines):
        command = lines[position]
        match = _HEREDOC.search(command)
        position += 1
        if not match:
            continue
        body: list[str] = []
        start = block.line + position
        while position < len(lines) and lines[position].strip() != match["tag"]:
            body.append(lines[position])
            position += 1
        position += 1
        if re.search(r"\.ya?ml\b|kubectl", command):
            yield Block(seed, start, "heredoc", "\n".join(body))


def _is_prose(line: str) -> bool:
    """A heading, or text with CJK characters that is neither a comment nor `key: value`."""
    stripped = line.strip()
    if _HEADING.match(stripped):
        return True
    return bool(_CJK.search(stripped)) and not _ASCII_KEY.match(stripped)


def _flush_blocks(seed: str, lines: list[str]) -> Iterator[Block]:
    """Code printed without fences: maximal runs of non-prose, non-blank-edged lines."""
    start, chunk = 0, []
    for number, line in enumerate([*lines, "结束"], 1):
        if _is_prose(line) or (not line.strip() and not chunk):
            if chunk and re.search(r"(?m)^\s*apiVersion:", "\n".join(chunk)):
                yield Block(seed, start, "flush", "\n".join(chunk).rstrip("\n"))
            start, chunk = number + 1, []
        else:
            if not chunk:
                start = number
            chunk.append(line)


# --- Repairs: the few ways a seed mangles otherwise whole YAML, undone mechanically. ----------

_BULLET = re.compile(r"^(?P<indent>\s*)[•◦▪](?P<rest>\s)", re.MULTILINE)
RESTORED_DIR = REPO / "tests" / "data"


def debulleted(text: str) -> str:
    """Seed 002 prints YAML list dashes as bullets (•, ◦, ▪): put the dashes back."""
    return _BULLET.sub(r"\g<indent>-\g<rest>", text)


def reindented(block: Block) -> str:
    """Seed 001 lost all indentation: the hand-restored text (tests/data/seed<NNN>/<line>.yaml).

    The restoration must differ from the seed only in leading whitespace, line for line.
    """
    path = RESTORED_DIR / f"seed{block.seed[:3]}" / f"{block.line}.yaml"
    restored = path.read_text(encoding="utf-8").rstrip("\n")
    flattened = [line.strip() for line in restored.split("\n")]
    if flattened != [line.strip() for line in block.text.split("\n")]:
        raise AssertionError(f"{path} differs from seed block {block.id} beyond indentation")
    return restored


REPAIRS = {"bullets": lambda block: debulleted(block.text), "indent": reindented}
