"""Checks the relative links of README.md and docs/**/*.md: every linked file or folder exists, and every
`#anchor` names a heading (as GitHub makes its anchors) or an `<a id>` of the linked Markdown file.

    .venv/bin/python scripts/check_links.py      # exit 1 and print `file:line: link: why` for each broken one

Links inside code (fenced blocks, `inline code`) are text, not links, and web links (https:, mailto:) are not
followed. tests/docs/test_docs.py runs it.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
INLINE_LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
HTML_ANCHOR = re.compile(r"<a\s+(?:id|name)=\"([^\"]+)\"")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:|^//")
LINE_ANCHOR = re.compile(r"^L\d+(-L\d+)?$")  # GitHub's line links into a code file


def doc_files(root: Path = ROOT) -> list[Path]:
    """README.md, a top-level ARCHITECTURE.md if one is left, and every Markdown file under docs/."""
    files = [root / name for name in ("README.md", "ARCHITECTURE.md") if (root / name).exists()]
    return files + sorted((root / "docs").rglob("*.md"))


def prose_lines(text: str, blank_code: bool = True) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks, with inline code blanked (a heading keeps it: its text is
    part of the anchor)."""
    out, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            out.append((number, INLINE_CODE.sub(lambda m: " " * len(m.group(0)), line) if blank_code else line))
    return out


def slug(heading: str) -> str:
    """GitHub's anchor of a heading (github-slugger): the rendered text lower-cased, every character that is not a
    letter, digit, space, hyphen or underscore dropped, each space a hyphen."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text stays, its target goes
    text = re.sub(r"<[^>]+>", "", text).lower()  # inline HTML
    text = "".join(ch for ch in text if ch.isalnum() or ch in " -_")
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor a Markdown file has: its headings' slugs (a repeated one gets -1, -2, ...) and <a id>s."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    text = path.read_text()
    for _, line in prose_lines(text, blank_code=False):
        if m := HEADING.match(line):
            base = slug(m.group(2))
            n = seen.get(base, 0)
            seen[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
    found |= set(HTML_ANCHOR.findall(text))
    return found


def links(path: Path) -> list[tuple[int, str]]:
    """(line number, target) of every inline link, image and reference definition outside code."""
    out = []
    for number, line in prose_lines(path.read_text()):
        out += [(number, m.group(1)) for m in INLINE_LINK.finditer(line)]
        if m := REFERENCE_DEF.match(line):
            out.append((number, m.group(1)))
    return out


def broken(path: Path, root: Path = ROOT) -> list[str]:
    """`file:line: target: why` for each relative link of `path` that leads nowhere."""
    problems = []
    cache: dict[Path, set[str]] = {}
    for number, target in links(path):
        if SCHEME.match(target):
            continue
        where = f"{path.relative_to(root)}:{number}: {target}"
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / unquote(file_part)).resolve() if file_part else path.resolve()
        if file_part.startswith("/"):
            problems.append(f"{where}: an absolute path; links are relative to the file")
            continue
        if not linked.is_relative_to(root.resolve()):
            problems.append(f"{where}: outside the repository")
            continue
        if not linked.exists():
            problems.append(f"{where}: no such file or folder")
            continue
        if not anchor:
            continue
        if linked.suffix == ".md":
            if anchor not in cache.setdefault(linked, anchors(linked) if linked.is_file() else set()):
                problems.append(f"{where}: no heading or <a id> with anchor #{anchor} in {linked.relative_to(root)}")
        elif not (linked.is_file() and LINE_ANCHOR.match(anchor)):
            problems.append(f"{where}: #{anchor} is not a line anchor (#L12) of a file")
    return problems


def reachable(start: Path, root: Path = ROOT) -> set[Path]:
    """The Markdown files reachable from `start` through relative links."""
    seen, todo = set(), [start.resolve()]
    while todo:
        path = todo.pop()
        if path in seen or not path.is_file() or path.suffix != ".md":
            continue
        seen.add(path)
        for _, target in links(path):
            file_part = target.partition("#")[0]
            if file_part and not SCHEME.match(target):
                todo.append((path.parent / unquote(file_part)).resolve())
    return seen


def main() -> int:
    problems = [p for path in doc_files() for p in broken(path)]
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"{len(doc_files())} Markdown files, {len(problems)} broken links")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
