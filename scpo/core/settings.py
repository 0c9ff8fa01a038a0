"""Stage settings: dataclasses filled from a YAML recipe (`--config`) and `--key value` overrides, TRL-style.

One flat recipe serves every stage: a stage takes its own keys and passes over keys that belong
to another stage; a key no stage knows is an error naming the key and the closest known one.
A setting given as a list where the stage expects one value is per iteration: element
`iteration` is used (the last one past the end), e.g. `tau: [0.5, 0.7]`.

Which keys exist at all (the catalogue) is known only above the stages: the package root installs
a provider (`install_catalogue`) that the CLI layer answers, so this module imports no stage.
Settings classes are built from shared blocks (scpo/core/blocks.py); a field's help is the comment
on its line in the source, printed by `scpo <stage> --help`.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import math
import textwrap
import tokenize
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from scpo.core.errors import HelpRequested, ScpoError, did_you_mean

# Keys the loop itself uses.
LOOP_KEYS = {"config", "iteration"}

_catalogue: Callable[[], set[str]] | None = None
_known: set[str] | None = None


def install_catalogue(provider: Callable[[], set[str]]) -> None:
    """`provider()` returns every recipe key some stage (or TRL) knows; asked once, when a key is foreign."""
    global _catalogue, _known
    _catalogue, _known = provider, None


def known_keys() -> set[str]:
    global _known
    if _known is None:
        _known = set(LOOP_KEYS) | (_catalogue() if _catalogue is not None else set())
    return _known


class Block:
    """The root of every settings block: blocks check their own fields in __post_init__ and call super().

    A stage hashes its settings into its manifest (`hashed`). Two class attributes shape that hash:
    `NOT_HASHED` names settings that say how a stage runs or checks, not what it makes; `HASHED_WHEN_SET`
    names settings added after runs began: at their default they stay out of the hash, so a run begun with
    an older scpo keeps its finished stages after an upgrade (tests/loop/test_plan_golden.py holds the hashes).
    """

    NOT_HASHED: typing.ClassVar[tuple[str, ...]] = ()
    HASHED_WHEN_SET: typing.ClassVar[tuple[str, ...]] = ()

    def __post_init__(self):
        pass

    def hashed(self, leave_out: tuple[str, ...] = ()) -> dict[str, Any]:
        """The settings as the stage's manifest config: without NOT_HASHED, `leave_out` and unset HASHED_WHEN_SET
        (each block of a composed class declares its own: they are collected over the class's bases)."""
        classes = type(self).__mro__
        drop = {n for c in classes for n in vars(c).get("NOT_HASHED", ())} | set(leave_out)
        when_set = {n for c in classes for n in vars(c).get("HASHED_WHEN_SET", ())}
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in drop or (f.name in when_set and value == f.default):
                continue
            out[f.name] = value
        return out


def _base_type(tp: Any) -> tuple[Any, bool]:
    """(the non-None type, whether None is allowed)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return (args[0] if len(args) == 1 else str), True
    return tp, False


def check_bare(name: str, raw: Any, tp: Any) -> Any:
    """`--k` with no value would read as true (k = 1): only a boolean setting may be given bare. Returns the value,
    a bare flag as the plain string "true" (a str subclass would not survive yaml.safe_dump)."""
    if not isinstance(raw, BareFlag):
        return raw
    if not (_base_type(tp)[0] is bool or (isinstance(tp, str) and "bool" in tp)):  # TRL's string annotations
        raise ScpoError(
            f"setting {name}: --{name} needs a value (`--{name} VALUE`); only true/false settings can be given bare"
        )
    return "true"


def optional(tp: Any) -> bool:
    """Whether a field type admits None (`int | None`; a string annotation from TRL counts when it says so)."""
    if isinstance(tp, str):
        return "None" in tp or "Optional" in tp
    return _base_type(tp)[1]


def _convert(name: str, raw: Any, tp: Any) -> Any:
    base, optional = _base_type(tp)
    check_bare(name, raw, tp)
    if raw is None or (optional and isinstance(raw, str) and raw.lower() in ("none", "null")):
        return None
    origin = typing.get_origin(base)
    try:
        if origin in (list, tuple):
            (item,) = typing.get_args(base)[:1] or (str,)
            items = raw if isinstance(raw, list) else [s for s in str(raw).split(",") if s != ""]
            return [_convert(name, x, item) for x in items]
        if origin is dict or base is dict:
            value = yaml.safe_load(raw) if isinstance(raw, str) else raw
            if not isinstance(value, dict):
                raise ValueError("expected a mapping")
            return value
        if base is bool:
            if isinstance(raw, bool):
                return raw
            if str(raw).lower() in ("true", "1", "yes"):
                return True
            if str(raw).lower() in ("false", "0", "no"):
                return False
            raise ValueError("expected true or false")
        if base is int and isinstance(raw, float) and not raw.is_integer():
            raise ValueError("expected an integer")
        if base in (int, float) and isinstance(raw, bool):  # YAML's `tau: true` is no number
            raise ValueError(f"expected a number, not {str(raw).lower()}")
        if base is float:
            value = float(raw)
            if not math.isfinite(value):  # nan compares false with everything; inf never ends a sum
                raise ValueError("expected a finite number")
            return value
        if base in (int, str):
            return base(raw)
        return raw
    except (TypeError, ValueError) as e:
        raise ScpoError(f"setting {name}={raw!r}: {e}") from None


def accepts_list(tp: Any) -> bool:
    """Whether a field type admits a list (list[str], or str | list[str] as TRL's report_to)."""
    if tp in (list, tuple) or typing.get_origin(tp) in (list, tuple):
        return True
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return any(accepts_list(a) for a in typing.get_args(tp))
    return False


def per_iteration(name: str, value: Any, tp: Any, iteration: int) -> Any:
    base, _ = _base_type(tp)
    if isinstance(value, list) and not accepts_list(tp):
        if not value:
            raise ScpoError(f"setting {name}: empty per-iteration list")
        return value[min(iteration, len(value) - 1)]
    if isinstance(value, str) and "," in value and base in (int, float):
        return per_iteration(name, value.split(","), tp, iteration)
    return value


class BareFlag(str):
    """A `--name` given without a value: true for a boolean setting, an error for any other."""


BARE = BareFlag("true")


def argv_settings(argv: list[str]) -> list[tuple[int, int, str, Any]]:
    """Each `--name value`, `--name=value` or bare `--name` of a command line as (start, end, name, value): argv[start:
    end] are its words. A leading `f.yaml` is the config. Shared by `split_argv` and `set_settings`, so both read a
    command line alike."""
    out, i = [], 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--"):
            if i == 0 and arg.endswith((".yaml", ".yml")):
                out.append((0, 1, "config", arg))
                i += 1
                continue
            raise ScpoError(f"unexpected argument {arg!r}: settings are given as --name value")
        key, eq, val = arg[2:].partition("=")
        key = key.replace("-", "_")
        start = i
        if not eq:
            if i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                val, i = argv[i + 1], i + 1
            else:
                val = BARE
        out.append((start, i + 1, key, val))
        i += 1
    return out


def set_settings(argv: list[str], **values: Any) -> list[str]:
    """`argv` with each named setting given once, as `--name value` at the end: what scpo's own command builders
    (the loop plan, compare, a dev evaluation) use to set a value the user's command line may already hold, since a
    setting given twice is an error."""
    drop = {i for start, end, key, _ in argv_settings(argv) if key in values for i in range(start, end)}
    out = [a for i, a in enumerate(argv) if i not in drop]
    for key, value in values.items():
        out += [f"--{key}", str(value)]
    return out


def split_argv(argv: list[str]) -> tuple[str | None, dict[str, Any]]:
    """`--config f.yaml --a 1 --flag --b=2` -> ('f.yaml', {'a': '1', 'flag': BARE, 'b': '2'}); a setting given
    twice is an error naming both values (scpo's own command builders replace a value with `set_settings`)."""
    config, values = None, {}
    for _, _, key, val in argv_settings(argv):
        if key == "config":
            if config is not None:
                raise ScpoError(f"--config is given twice on the command line ({config}, then {val}): give one recipe")
            config = val
            continue
        if key in values:
            raise ScpoError(
                f"setting {key} is given twice on the command line (--{key} {values[key]}, then --{key} {val}): "
                "give it once"
            )
        values[key] = val
    return config, values


class UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader that refuses a key given twice in one mapping (YAML keeps the last one silently, so a
    second `lr:` or a second method of the same name in a comparison file would hide the first). Keys merged in
    from an anchor (`<<: *base`) may be overridden, as YAML means them to be."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = {}  # key -> the line it was first given at
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=deep)
                if not isinstance(key, (str, int, float, bool)):
                    continue
                line = key_node.start_mark.line + 1
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"the key {key!r} is given twice, at line {seen[key]} and at line {line}"
                    )
                seen[key] = line
        return super().construct_mapping(node, deep)


def load_recipe(path: str | None) -> dict[str, Any]:
    if path is None:
        return {}
    p = Path(path)
    if not p.exists():
        raise ScpoError(f"recipe {p}: file not found")
    try:
        data = yaml.load(p.read_text(), Loader=UniqueKeyLoader) or {}
    except yaml.YAMLError as e:  # one line: what is wrong and where (YAML's own text quotes the line beneath)
        mark = getattr(e, "problem_mark", None)
        what = getattr(e, "problem", None) or str(e).splitlines()[0]
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ScpoError(f"recipe {p}: invalid YAML ({what}{where})") from None
    if not isinstance(data, dict):
        raise ScpoError(f"recipe {p}: expected a mapping of setting: value")
    return data


def check_keys(keys: set[str], mine: set[str], source: str) -> None:
    """A key that is neither this stage's nor any other stage's is a typo: name the closest known key."""
    foreign = keys - mine
    if not foreign:
        return
    everything = known_keys()
    for key in sorted(foreign - everything):
        raise ScpoError(f"unknown setting {key!r} in {source}{did_you_mean(key, everything | mine)}")


def wants_help(argv: list[str]) -> bool:
    return any(a in ("-h", "--help") for a in argv)


def field_help(cls: type) -> dict[str, str]:
    """Each field's help: the comment on its line in the class that declares it (dataclass bodies, read once). A
    field written over several lines (as a formatter wraps a long one) has the first comment within its lines."""
    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass) or klass.__module__ == "builtins":
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
            tree = ast.parse(source)
        except (OSError, TypeError, SyntaxError):
            continue
        comments: dict[int, str] = {}  # line -> its comment
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.COMMENT:
                comments.setdefault(token.start[0], token.string.lstrip("#").strip())
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node in body:
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                lines = [comments[i] for i in range(node.lineno, node.end_lineno + 1) if i in comments]
                if lines:
                    out[node.target.id] = lines[0]
    return out


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return "(required)"


def help_text(cls: type, title: str | None = None, skip: set[str] = frozenset()) -> str:
    """Every setting of `cls` with its default and one line of help; the title is its docstring."""
    doc = cls.__doc__ or ""
    title = title or (cls.__name__ if doc.startswith(cls.__name__ + "(") else doc.strip()) or cls.__name__
    helps = field_help(cls)
    fields = [f for f in dataclasses.fields(cls) if f.name not in skip and not f.name.startswith("_")]
    width = max((len(f.name) for f in fields), default=10) + 2
    lines = [title, "", "settings (recipe key or --name value; a list is per iteration):"]
    for f in sorted(fields, key=lambda f: f.name):
        default = _default(f)
        text = f"  --{f.name:<{width}} default {default!r}"
        if helps.get(f.name):
            text += f"  {helps[f.name]}"
        lines.append(text)
    return "\n".join(lines)


_composed: dict[tuple, type] = {}


def compose(name: str, bases: tuple[type, ...]) -> type:
    """A settings class made of several blocks (a stage's own, and those its labelers or losses declare)."""
    bases = tuple(dict.fromkeys(b for b in bases if b is not None))  # each block once, in order
    # a block that another block already includes (scir's settings include the judge's) is left to that one: listed
    # before its subclass, it would leave no consistent method resolution order
    bases = tuple(b for b in bases if not any(o is not b and issubclass(o, b) for o in bases))
    if (name, bases) not in _composed:
        cls = dataclasses.make_dataclass(name, [], bases=bases)
        cls.__doc__ = bases[0].__doc__
        _composed[name, bases] = cls
    return _composed[name, bases]


def with_extensions(base: type, registry, chosen: Any = None) -> type:
    """`base` plus the settings block of every built-in entry of `registry` (a labeler, loss or reward
    registry), and of `chosen` entries given by dotted path (user code): the keys a stage accepts."""
    blocks = [cls.settings for cls in registry.builtins() if getattr(cls, "settings", None)]
    names = chosen if isinstance(chosen, (list, tuple)) else str(chosen).split(",") if chosen else []
    builtin = set(registry.names())
    blocks += [getattr(registry.get(n), "settings", None) for n in names if n and n not in builtin]
    return compose(base.__name__, (base, *blocks))


def peek(argv: list[str], key: str, default: Any = None) -> Any:
    """One setting's raw value (the command line over the recipe, per iteration), before the stage's class is known:
    what picks the labeler, loss or rewards whose settings blocks join the stage's. A setting some class declares is
    read with `peek_setting`, which takes the class's default."""
    config, cli = split_argv([a for a in argv if a not in ("-h", "--help")])
    merged = {**load_recipe(config), **cli}
    value = merged.get(key, default)
    check_bare(key, value, str)
    if isinstance(value, list):
        iteration = int(merged.get("iteration", 0) or 0)
        value = value[min(iteration, len(value) - 1)] if value else default
    return value


def peek_setting(argv: list[str], key: str, cls: type) -> Any:
    """`peek` for a setting that the settings class `cls` declares: its value typed as the field (None for null where
    the field allows it; a list setting whole, not per iteration), or the class's own default when unset. The
    default is written once, in the class; no caller repeats it."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if key not in fields:
        raise KeyError(f"{cls.__name__} has no setting {key!r}")
    config, cli = split_argv([a for a in argv if a not in ("-h", "--help")])
    merged = {**load_recipe(config), **cli}
    if key not in merged:
        default = _default(fields[key])
        return None if default == "(required)" else default
    tp = typing.get_type_hints(cls)[key]
    return _convert(key, per_iteration(key, merged[key], tp, int(merged.get("iteration", 0) or 0)), tp)


def parse_settings(cls: type, argv: list[str], title: str | None = None) -> Any:
    """Builds `cls` (a dataclass with an `iteration` field) from a recipe and command-line overrides.

    `-h` / `--help` anywhere raises HelpRequested with every setting, its default and its help.
    """
    if wants_help(argv):
        raise HelpRequested(help_text(cls, title))
    config, cli = split_argv(argv)
    recipe = load_recipe(config)
    hints = typing.get_type_hints(cls)
    mine = {f.name for f in dataclasses.fields(cls)}
    check_keys(set(recipe), mine, f"recipe {config}")
    check_keys(set(cli), mine, "the command line")
    check_outputs_apart({**recipe, **cli}, getattr(cls, "OUTPUTS", ()), config)
    merged = {k: v for k, v in {**recipe, **cli}.items() if k in mine}
    iteration = int(merged.get("iteration", 0) or 0)
    values = {}
    for name, raw in merged.items():
        raw = per_iteration(name, raw, hints[name], iteration)
        values[name] = _convert(name, raw, hints[name])
    try:
        return cls(**values)
    except TypeError as e:
        raise ScpoError(f"settings for {cls.__name__}: {e}") from None


def check_outputs_apart(values: dict[str, Any], outputs: typing.Iterable[str], config: str | None) -> None:
    """An output setting that names a file another path setting of the recipe or command line names (the problems,
    eval, dev or samples file of any stage) would replace it: refused before anything runs, naming both."""
    paths = {
        key: value
        for key, value in values.items()
        if isinstance(value, str) and value and key.endswith(("_file", "_output", "_samples"))
    }
    for out in outputs:
        if not paths.get(out):
            continue
        target = Path(paths[out]).resolve()
        for key, other in paths.items():
            if key != out and Path(other).resolve() == target:
                where = f"recipe {config} and the command line" if config else "the command line"
                raise ScpoError(
                    f"settings {out} and {key} are the same file ({paths[out]}) in {where}: writing "
                    f"{out} would replace it; write {out} elsewhere"
                )


def asdict(settings: Any) -> dict[str, Any]:
    return dataclasses.asdict(settings)


def pick(settings: Any, keys) -> dict[str, Any]:
    """The named settings as a dict (what a stage hashes into its manifest)."""
    return {key: getattr(settings, key) for key in keys}
