"""LLM-as-a-judge for Self-Rewarding (Yuan et al. 2024): the additive 5-point prompt and a robust score parser.

Pure Python, no torch. The policy judges each of its responses on its own (one prompt per
response, never two responses side by side unless `judge_pairwise` asks for it with both orders),
so the judge's position bias cannot pick the winner. A judge output whose score cannot be read is
recorded as None and excluded from the mean, never read as 0.
"""

from __future__ import annotations

import re

# The additive 5-point prompt of Yuan et al. 2024 (Figure 2), ending in "Score: <points>".
DEFAULT_TEMPLATE = """Review the user's question and the corresponding response using the additive 5-point \
scoring system described below. Points are accumulated based on the satisfaction of each criterion:

- Add 1 point if the response is relevant and provides some information related to the user's inquiry, \
even if it is incomplete or contains some irrelevant content.
- Add another point if the response addresses a substantial portion of the user's question, but does not \
completely resolve the query or provide a direct answer.
- Award a third point if the response answers the basic elements of the user's question in a useful way, \
regardless of whether it seems to have been written by an AI Assistant or if it has elements typically \
found in blogs or search results.
- Grant a fourth point if the response is clearly written from an AI Assistant's perspective, addressing \
the user's question directly and comprehensively, and is well-organized and helpful, even if there is \
slight room for improvement in clarity, conciseness or focus.
- Bestow a fifth point for a response that is impeccably tailored to the user's question by an AI \
Assistant, without extraneous information, reflecting expert knowledge, and demonstrating a high-quality, \
engaging, and insightful answer.

User: {instruction}

<response>{response}</response>

After examining the user's instruction and the response:
- Briefly justify your total score, up to 100 words.
- Conclude with the score using the format: "Score: <total points>"

Remember to assess from the AI Assistant perspective, utilizing web search knowledge as necessary. To \
evaluate the response in alignment with this additive scoring model, we'll systematically attribute points \
based on the outlined criteria."""

# Pairwise variant (only with judge_pairwise: true; each pair is judged in both orders to cancel position bias).
DEFAULT_PAIRWISE_TEMPLATE = """Compare two responses to the user's question. Judge which one is more \
relevant, correct, helpful and concise.

User: {instruction}

<response A>{response_a}</response A>

<response B>{response_b}</response B>

Briefly justify your choice, then conclude with "Winner: A" or "Winner: B"."""

# A whole number: never a prefix or a suffix of a longer one. The look-behind also keeps a digit run from being
# tried at each of its positions (quadratic on degenerate text); possessive quantifiers (*+) keep whitespace runs
# from being re-split between adjacent \s* (cubic): every pattern here is linear in the text.
_NUMBER = r"(?<![\d.])(\d++(?:\.\d+)?)(?!\.?\d)"
# Not a score: a number that starts arithmetic ("Score: 2 + 3 = 5" restates the question).
_NOT_ARITHMETIC = r"(?!\s*+[-+*×=]\s*+\d)"
# "Score: 4", "**Score:** 4", "Score - 4/5", "score = 4 points", "Total score: 4"
_SCORE = re.compile(
    r"score\s*+\**+\s*+[:=\-]?+\s*+\**+\s*+" + _NUMBER + r"(?:\s*+(?:/|out of)\s*+" + _NUMBER + r")?" + _NOT_ARITHMETIC,
    re.IGNORECASE,
)
# "a score of 4", "I award 4 points", "total of 3 points"
_OF_POINTS = re.compile(r"score of\s*+" + _NUMBER + r"|" + _NUMBER + r"\s*+points?\b", re.IGNORECASE)
_WINNER = re.compile(r"winner\s*+\**+\s*+[:=\-]?+\s*+\**+\s*+\(?+\s*+([AB])\b", re.IGNORECASE)


def render(template: str, instruction: str, response: str) -> str:
    """The judge prompt for one response. Fails with the field name if the template lacks one."""
    if "{instruction}" not in template or "{response}" not in template:
        raise ValueError("judge_template must contain {instruction} and {response}")
    # str.replace, not str.format: responses and instructions contain braces (code, LaTeX).
    return template.replace("{instruction}", instruction).replace("{response}", response)


def render_pairwise(template: str, instruction: str, a: str, b: str) -> str:
    for field in ("{instruction}", "{response_a}", "{response_b}"):
        if field not in template:
            raise ValueError(f"judge_pairwise_template must contain {field}")
    return template.replace("{instruction}", instruction).replace("{response_a}", a).replace("{response_b}", b)


def parse_score(text: str, max_score: float = 5.0, min_score: float = 0.0) -> float | None:
    """The judge's score, or None when it cannot be read or lies outside [min_score, max_score].

    The last "Score: x" wins (judges restate criteria before concluding); "x/5" and "x out of 5"
    are read as x when the denominator is max_score (other denominators are rescaled to it).
    Without any "Score:", the last "score of x" / "x points" phrase is taken.
    """
    if not text:
        return None
    matches = list(_SCORE.finditer(text))
    if matches:
        m = matches[-1]
        value = float(m.group(1))
        if m.group(2) is not None:
            denominator = float(m.group(2))
            if denominator <= 0:
                return None
            if denominator != max_score:
                value = value / denominator * max_score
    else:
        phrases = list(_OF_POINTS.finditer(text))
        if not phrases:
            return None
        m = phrases[-1]
        value = float(m.group(1) if m.group(1) is not None else m.group(2))
    return value if min_score <= value <= max_score else None


def parse_winner(text: str) -> str | None:
    """'A' or 'B' from a pairwise judgement (the last "Winner:"), or None."""
    matches = list(_WINNER.finditer(text or ""))
    return matches[-1].group(1).upper() if matches else None


def ordered_pairs(n: int) -> list[tuple[int, int]]:
    """Every ordered pair (a, b), a != b: each two responses are compared in both orders."""
    return [(a, b) for a in range(n) for b in range(n) if a != b]


def pairwise_scores(
    n: int, comparisons: list[tuple[int, int, list[str]]], max_score: float = 5.0
) -> tuple[list[float | None], list[int]]:
    """Per-response scores from pairwise judgements: max_score x the share of its readable comparisons it won.

    `comparisons` holds (index shown as A, index shown as B, judge outputs). Every pair is judged in both
    orders, so a judge that always picks the first position gives every response the same score (a tie,
    no pair) instead of a winner. Unreadable verdicts are counted per response (second value) and excluded.
    """
    wins: list[list[float]] = [[] for _ in range(n)]
    unparsed = [0] * n
    for a, b, texts in comparisons:
        for text in texts:
            winner = parse_winner(text)
            if winner is None:
                unparsed[a] += 1
                unparsed[b] += 1
                continue
            wins[a].append(1.0 if winner == "A" else 0.0)
            wins[b].append(1.0 if winner == "B" else 0.0)
    return [max_score * sum(w) / len(w) if w else None for w in wins], unparsed


def mean_score(scores: list[float | None]) -> float | None:
    """Mean of the readable scores; None when none could be read."""
    readable = [s for s in scores if s is not None]
    return sum(readable) / len(readable) if readable else None
