"""New problems written by the model (ScPO): the few-shot prompt, parsing, and near-duplicate removal.

Pure Python. A candidate is a near-duplicate of a known problem when their normalised texts are
equal or the Jaccard similarity of their token n-gram sets reaches a threshold. Lookups use prefix
filtering (two sets with Jaccard >= t share one of the first |A| - ceil(t |A|) + 1 n-grams of each
under any fixed order; rare n-grams first keeps the candidate lists short), then verify exactly.
"""

from __future__ import annotations

import math
import random
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence

DEFAULT_PROMPT = (
    "Here are some example problems:\n\n{examples}\n\n"
    "Write ONE new problem of similar difficulty that can be solved and has a single final answer. "
    "Write only the problem, not its solution."
)
DEFAULT_EXAMPLE = "Problem {i}: {problem}"
# ScPO Appendix D, "Query Generation: GSM8K and MATH" (4-shot): the examples as "Q: ..." lines, then the request.
SCPO_PROMPT = (
    "{examples}\nPrompt: Based on the examples above, generate ONE solvable math word problem with similar "
    "difficulty. Note that all the information needed to solve the problem should be included in the question. "
    "Output the question and nothing else.\nQ:"
)
SCPO_EXAMPLE = "Q: {problem}"
# ZebraLogic (ScPO §3: "the model rewrites a puzzle with perturbed attributes"; the paper's prompt text is not
# reproduced here, so this wording is scpo's): one seed puzzle, rewritten with other attributes and clues.
ZEBRA_REWRITE_PROMPT = (
    "Here is a logic grid puzzle:\n\n{examples}\n\nWrite ONE new puzzle of the same kind and size by changing its "
    "attributes: other names, other values, other characteristics, and clues rewritten for them, so that the new "
    "puzzle has exactly one solution. Keep the layout: the 'There are N houses' sentence, one line per "
    "characteristic starting with ' - ' and listing its values in backticks, then '## Clues:' and the numbered "
    "clues. Write only the puzzle, not its solution."
)

_TOKEN = re.compile(r"[a-z]+|\d+(?:[.,]\d+)*|[^\s\w]")
# Linear on degenerate text: possessive quantifiers, and a line's leading punctuation scanned within its line.
_LABEL = re.compile(r"^\W*+(?:new\s++)?(?:problem|question|q)\s*+\d*+\s*+[:.)][*_\s]*+", re.IGNORECASE)
_END = re.compile(r"\n[^\w\n]*+(?:answer|solution|step\s*+1)\b|\b(?:answer|solution)\s*+:", re.IGNORECASE)


def tokens(text: str) -> list[str]:
    """Words, numbers and single symbols, case- and width-folded: "3+4" and "3 + 4" tokenise alike."""
    return _TOKEN.findall(unicodedata.normalize("NFKC", text).lower())


def normalize(text: str) -> str:
    toks = tokens(text)
    while toks and toks[-1] in ".?!":
        toks.pop()
    return " ".join(toks)


def shingles(text: str, n: int) -> frozenset[tuple[str, ...]]:
    toks = normalize(text).split()
    if len(toks) <= n:
        return frozenset([tuple(toks)]) if toks else frozenset()
    return frozenset(tuple(toks[i : i + n]) for i in range(len(toks) - n + 1))


def jaccard(a: frozenset, b: frozenset) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


class NearDuplicates:
    """Known problems; `match(text)` names the most similar one at or above the threshold, else None."""

    def __init__(self, known: Sequence[tuple[str, str]], n: int = 3, threshold: float = 0.6):
        self.n, self.threshold = n, threshold
        self.sets: dict[str, frozenset] = {}
        self.exact: dict[str, str] = {}
        self.index: dict[tuple, list[str]] = {}
        self.rarity = Counter(g for _, text in known for g in shingles(text, n))  # fixed once: the order
        for key, text in known:
            self.add(key, text)

    def _prefix(self, grams: frozenset) -> list[tuple]:
        ordered = sorted(grams, key=lambda g: (self.rarity.get(g, 0), g))
        return ordered[: len(ordered) - math.ceil(self.threshold * len(ordered)) + 1]

    def add(self, key: str, text: str) -> None:
        grams = shingles(text, self.n)
        self.sets[key] = grams
        self.exact.setdefault(normalize(text), key)
        for g in self._prefix(grams):
            self.index.setdefault(g, []).append(key)

    def match(self, text: str) -> tuple[str, float] | None:
        same = self.exact.get(normalize(text))
        if same is not None:
            return same, 1.0
        grams = shingles(text, self.n)
        best = None
        for key in {k for g in self._prefix(grams) for k in self.index.get(g, ())}:
            sim = jaccard(grams, self.sets[key])
            if sim >= self.threshold and (best is None or (sim, best[0]) > (best[1], key)):
                best = (key, sim)
        return best


def parse_problem(completion: str, keep_lines: bool = False) -> str:
    """The problem a model wrote: a leading "Problem:" label and anything from "Answer"/"Solution" on removed;
    whitespace collapsed (within each line when `keep_lines`: a zebra puzzle's layout is its lines)."""
    text = _LABEL.sub("", completion.strip())
    end = _END.search(text)
    if end:
        text = text[: end.start()]
    if keep_lines:
        return "\n".join(" ".join(line.split()) for line in text.strip().splitlines()).strip()
    return " ".join(text.split())


def few_shot_prompt(
    template: str, seeds: Sequence[str], example: str = DEFAULT_EXAMPLE, separator: str = "\n\n"
) -> str:
    """The generation prompt: each seed problem written as `example` ({i}, {problem}), joined, put at {examples}."""
    examples = separator.join(
        example.replace("{i}", str(i)).replace("{problem}", text) for i, text in enumerate(seeds, 1)
    )
    return template.replace("{examples}", examples)


def pick_seeds(seed: int, iteration: int, index: int, count: int, shots: int) -> list[int]:
    """Which seed problems candidate `index` sees: random, but fixed by (seed, iteration, index)."""
    return random.Random(f"{seed}:{iteration}:{index}").sample(range(count), min(shots, count))
