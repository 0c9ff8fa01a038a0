"""Zebra (logic grid) puzzles: seeded generation, a SAT proof that the solution is unique, and the puzzle text.

ZebraLogic (Lin et al. 2025, arXiv 2502.01100; the benchmark ScPO evaluates on, arXiv 2411.04109 §3) is
procedural: N houses x M attributes, every attribute value in exactly one house, and clues of the types
below. Its data are gated on the hub, so scpo makes its own: the same sizes (2..6 x 2..6), the same text
layout and clue types, graded exactly because the generator knows the solution.

How a puzzle is made (the classic generate-and-reduce, as in ZebraLogic's own generator):
1. a random solution grid (the first attribute is always `Name`, as in ZebraLogic);
2. random clues that are true of the solution are added until the SAT solver (pycosat, the picosat
   solver) proves the solution unique: the clauses of the rules and clues plus a clause that excludes the
   solution are unsatisfiable;
3. every clue whose removal keeps the solution unique is removed, in a random order.

Each clue is also evaluated in plain Python (`holds`), independently of its CNF encoding: clue sampling
uses it, and the tests check both against brute-force enumeration of every grid.
Pure Python plus pycosat; no torch.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

import pycosat

from scpo.core.errors import ScpoError

MIN_SIZE, MAX_SIZE = 2, 6

# header: (the line that lists the values, how a person with value v is named in a clue, values).
# The first line's wording and the Name / Drink values are ZeroEval's one-shot example (src/templates/ZEBRA_GRID.py).
ATTRIBUTES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "Name": ("Each person has a unique name", "{}", ("Arnold", "Eric", "Peter", "Alice", "Bob", "Carol")),
    "Drink": (
        "Each person has a unique favorite drink",
        "the one who only drinks {}",
        ("tea", "water", "milk", "coffee", "juice", "soda"),
    ),
    "Color": (
        "Each person has a unique favorite color",
        "the person who loves {}",
        ("red", "blue", "green", "yellow", "white", "purple"),
    ),
    "Pet": (
        "Each person has a unique pet",
        "the person who keeps a {}",
        ("cat", "dog", "bird", "fish", "horse", "rabbit"),
    ),
    "Food": (
        "Each person has a unique favorite food",
        "the person who likes {}",
        ("pizza", "soup", "stew", "spaghetti", "curry", "salad"),
    ),
    "Hobby": (
        "Each person has a unique hobby",
        "the person who enjoys {}",
        ("gardening", "painting", "cooking", "hiking", "knitting", "photography"),
    ),
    "Job": (
        "Each person has a unique occupation",
        "the {}",
        ("doctor", "teacher", "engineer", "artist", "lawyer", "nurse"),
    ),
    "Car": (
        "Each person drives a unique car",
        "the person who drives a {}",
        ("Toyota", "Ford", "BMW", "Tesla", "Honda", "Audi"),
    ),
}
ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth")

# Clue types (ZebraLogic §2.1): found_at / not_at take (item, house); the others take two items.
# distance: the house distance the relation needs (None: any); sampling weight: choice, so that clue sets
# are not dominated by the many not_at / not_same facts.
CLUE_TYPES = {
    "found_at": 1.0,
    "not_at": 1.0,
    "same_house": 2.0,
    "not_same_house": 1.0,
    "left_of": 1.0,
    "right_of": 1.0,
    "directly_left": 1.5,
    "next_to": 1.5,
    "one_between": 1.0,
    "two_between": 1.0,
}

Item = tuple[str, str]  # (attribute, value)


@dataclass(frozen=True)
class Clue:
    type: str
    x: Item
    y: Item | None = None  # the second item of a two-item clue
    house: int | None = None  # 1-based, for found_at / not_at

    def as_row(self) -> dict:
        row = {"type": self.type, "x": list(self.x)}
        if self.y is not None:
            row["y"] = list(self.y)
        if self.house is not None:
            row["house"] = self.house
        return row

    @classmethod
    def from_row(cls, row: dict, where: str) -> Clue:
        if not isinstance(row, dict) or row.get("type") not in CLUE_TYPES:
            raise ScpoError(f"{where}: clue {row!r}: type must be one of {sorted(CLUE_TYPES)}")
        one_item = row["type"] in ("found_at", "not_at")
        try:
            x = tuple(row["x"])
            y = None if one_item else tuple(row["y"])
            house = int(row["house"]) if one_item else None
        except (KeyError, TypeError, ValueError) as e:
            raise ScpoError(
                f"{where}: clue {row!r}: needs x [attribute, value] and "
                f"{'house' if one_item else 'y [attribute, value]'} ({e})"
            ) from None
        return cls(row["type"], x, y, house)


def check_size(houses: int, attributes: int) -> None:
    for what, n in (("houses", houses), ("attributes", attributes)):
        if not MIN_SIZE <= n <= MAX_SIZE:
            raise ScpoError(f"zebra size {houses}*{attributes}: {what} must be {MIN_SIZE}..{MAX_SIZE}, got {n}")


def parse_size(size: str) -> tuple[int, int]:
    """'3*4' (ZebraLogic's spelling) or '3x4' -> (houses, attributes), checked against the supported range."""
    parts = str(size).lower().replace("x", "*").split("*")
    try:
        houses, attributes = (int(p) for p in parts)
    except ValueError:
        raise ScpoError(f"zebra size {size!r}: write houses*attributes, e.g. 3*4") from None
    check_size(houses, attributes)
    return houses, attributes


def positions(solution: list[dict[str, str]]) -> dict[Item, int]:
    """Each (attribute, value) -> its house, 0-based."""
    return {(a, v): h for h, house in enumerate(solution) for a, v in house.items()}


def holds(clue: Clue, where: dict[Item, int]) -> bool:
    """Whether a clue is true of a grid given as item -> 0-based house."""
    hx = where[clue.x]
    if clue.type == "found_at":
        return hx == clue.house - 1
    if clue.type == "not_at":
        return hx != clue.house - 1
    hy = where[clue.y]
    return {
        "same_house": hx == hy,
        "not_same_house": hx != hy,
        "left_of": hx < hy,
        "right_of": hx > hy,
        "directly_left": hx + 1 == hy,
        "next_to": abs(hx - hy) == 1,
        "one_between": abs(hx - hy) == 2,
        "two_between": abs(hx - hy) == 3,
    }[clue.type]


class Encoding:
    """CNF over variables "item i is in house h": the rules (each house has one value of each attribute, each
    value is in one house) and one clue at a time."""

    def __init__(self, houses: int, columns: dict[str, list[str]]):
        self.n = houses
        self.items = [(a, v) for a, values in columns.items() for v in values]
        self.index = {item: i for i, item in enumerate(self.items)}
        self.rules = []
        for a, values in columns.items():
            if len(values) != houses or len(set(values)) != houses:
                raise ScpoError(f"zebra attribute {a!r}: needs {houses} distinct values, got {values}")
            for v in values:  # each value in exactly one house
                self.rules += self._exactly_one([self.var((a, v), h) for h in range(houses)])
            for h in range(houses):  # each house has exactly one value of the attribute
                self.rules += self._exactly_one([self.var((a, v), h) for v in values])

    def var(self, item: Item, house: int) -> int:
        return 1 + self.index[item] * self.n + house

    @staticmethod
    def _exactly_one(literals: list[int]) -> list[list[int]]:
        return [literals] + [[-a, -b] for a, b in itertools.combinations(literals, 2)]

    def clauses(self, clue: Clue) -> list[list[int]]:
        n, x = self.n, clue.x
        for item in (clue.x, clue.y):
            if item is not None and item not in self.index:
                raise ScpoError(f"zebra clue {clue.as_row()}: {list(item)} is not an attribute value of the puzzle")
        if clue.type in ("found_at", "not_at"):
            if not 1 <= clue.house <= n:
                raise ScpoError(f"zebra clue {clue.as_row()}: house must be 1..{n}")
            v = self.var(x, clue.house - 1)
            return [[v]] if clue.type == "found_at" else [[-v]]
        y = clue.y
        if clue.type == "same_house":
            return [c for h in range(n) for c in ([-self.var(x, h), self.var(y, h)], [-self.var(y, h), self.var(x, h)])]
        if clue.type == "not_same_house":
            return [[-self.var(x, h), -self.var(y, h)] for h in range(n)]
        allowed = {
            "left_of": lambda h: range(h + 1, n),
            "right_of": lambda h: range(h),
            "directly_left": lambda h: [h + 1],
            "next_to": lambda h: [h - 1, h + 1],
            "one_between": lambda h: [h - 2, h + 2],
            "two_between": lambda h: [h - 3, h + 3],
        }[clue.type]
        # x in house h implies y in one of the allowed houses
        return [[-self.var(x, h)] + [self.var(y, g) for g in allowed(h) if 0 <= g < n] for h in range(n)]

    def solutions(self, clues: list[Clue], limit: int = 2) -> list[dict[Item, int]]:
        """Up to `limit` grids that satisfy the rules and the clues."""
        cnf = self.rules + [c for clue in clues for c in self.clauses(clue)]
        found = []
        for model in pycosat.itersolve(cnf):
            true = {v for v in model if v > 0}
            found.append({item: h for item in self.items for h in range(self.n) if self.var(item, h) in true})
            if len(found) >= limit:
                break
        return found

    def unique(self, cnf_clues: list[list[int]], solution: dict[Item, int]) -> bool:
        """Whether `solution` is the only grid: the clauses plus "not this grid" are unsatisfiable."""
        block = [-self.var(item, h) for item, h in solution.items()]
        return pycosat.solve(self.rules + cnf_clues + [block]) == "UNSAT"


def _true_clues(n: int, where: dict[Item, int], items: list[Item]) -> list[Clue]:
    clues = []
    for x in items:
        clues.append(Clue("found_at", x, house=where[x] + 1))
        clues += [Clue("not_at", x, house=h + 1) for h in range(n) if h != where[x]]
    for x, y in itertools.permutations(items, 2):
        if x[0] == y[0]:
            continue  # two values of one attribute: the rules already relate them
        for kind in (
            "same_house",
            "not_same_house",
            "left_of",
            "right_of",
            "directly_left",
            "next_to",
            "one_between",
            "two_between",
        ):
            symmetric = kind in ("same_house", "not_same_house", "next_to", "one_between", "two_between")
            if symmetric and x > y:
                continue
            clue = Clue(kind, x, y)
            if holds(clue, where):
                clues.append(clue)
    return clues


@dataclass
class Puzzle:
    houses: int
    columns: dict[str, list[str]]  # header -> its values, in the order the puzzle lists them
    solution: list[dict[str, str]]  # per house (0-based), header -> value
    clues: list[Clue]

    @property
    def size(self) -> str:
        return f"{self.houses}*{len(self.columns)}"

    def gold(self) -> dict:
        return {f"House {h + 1}": dict(house) for h, house in enumerate(self.solution)}


def generate(houses: int, attributes: int, rng: random.Random) -> Puzzle:
    """A puzzle of the size with a unique solution and no redundant clue."""
    check_size(houses, attributes)
    headers = ["Name"] + rng.sample([a for a in ATTRIBUTES if a != "Name"], attributes - 1)
    columns = {a: rng.sample(ATTRIBUTES[a][2], houses) for a in headers}
    solution = [{a: columns[a][h] for a in headers} for h in range(houses)]
    for values in columns.values():  # the listed order tells nothing about the houses
        rng.shuffle(values)
    where = positions(solution)
    enc = Encoding(houses, columns)
    pool = _true_clues(houses, where, enc.items)
    rng.shuffle(pool)
    # A weighted random order (Efraimidis-Spirakis keys u^(1/w)): the first clues are likelier of heavier types.
    order = sorted(pool, key=lambda c: rng.random() ** (1.0 / CLUE_TYPES[c.type]), reverse=True)
    chosen, cnf = [], []
    for clue in order:
        chosen.append(clue)
        cnf += enc.clauses(clue)
        if enc.unique(cnf, where):
            break
    rng.shuffle(chosen)
    kept = list(chosen)
    for clue in chosen:  # drop each clue the solution stays unique without
        rest = [c for c in kept if c is not clue]
        if enc.unique([cl for c in rest for cl in enc.clauses(c)], where):
            kept = rest
    return Puzzle(houses, columns, solution, kept)


def describe(item: Item, capital: bool = False) -> str:
    text = (
        ATTRIBUTES[item[0]][1].format(item[1]) if item[0] in ATTRIBUTES else f"the person whose {item[0]} is {item[1]}"
    )
    return text[:1].upper() + text[1:] if capital else text


def clue_text(clue: Clue) -> str:
    x = describe(clue.x, capital=True)
    if clue.type in ("found_at", "not_at"):
        return f"{x} is {'not ' if clue.type == 'not_at' else ''}in the {ORDINALS[clue.house - 1]} house."
    y = describe(clue.y)
    return {
        "same_house": f"{x} is {y}.",
        "not_same_house": f"{x} is not {y}.",
        "left_of": f"{x} is somewhere to the left of {y}.",
        "right_of": f"{x} is somewhere to the right of {y}.",
        "directly_left": f"{x} is directly left of {y}.",
        "next_to": f"{x} and {y} are next to each other.",
        "one_between": f"There is one house between {describe(clue.x)} and {y}.",
        "two_between": f"There are two houses between {describe(clue.x)} and {y}.",
    }[clue.type]


def puzzle_text(p: Puzzle) -> str:
    """ZebraLogic's layout: the houses, one line per attribute with its values, the numbered clues."""
    lines = [
        f"There are {p.houses} houses, numbered 1 to {p.houses} from left to right, as seen from across the "
        "street. Each house is occupied by a different person. Each house has a unique attribute for each of "
        "the following characteristics:"
    ]
    for a, values in p.columns.items():
        phrase = ATTRIBUTES[a][0] if a in ATTRIBUTES else f"Each person has a unique {a}"
        lines.append(f" - {phrase}: " + ", ".join(f"`{v}`" for v in values))
    lines += ["", "## Clues:"] + [f"{i}. {clue_text(c)}" for i, c in enumerate(p.clues, 1)]
    return "\n".join(lines)


def check_puzzle(houses: int, columns: dict[str, list[str]], clues: list[Clue], where: str) -> dict[Item, int]:
    """The one grid a hand-written clue set allows; a named error when no grid or several grids fit."""
    enc = Encoding(houses, columns)
    found = enc.solutions(clues, limit=2)
    if not found:
        for i in range(1, len(clues) + 1):  # the first clue that makes the set unsatisfiable
            if not enc.solutions(clues[:i], limit=1):
                raise ScpoError(
                    f"{where}: no grid satisfies the clues: clues 1..{i} already contradict each other "
                    f"(clue {i}: {clue_text(clues[i - 1])!r})"
                )
    if len(found) > 1:
        raise ScpoError(f"{where}: the clues allow more than one grid; add clues until the solution is unique")
    return found[0]
