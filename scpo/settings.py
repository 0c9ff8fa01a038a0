"""Stage settings: dataclasses filled from a YAML recipe (`--config`) and `--key value` overrides, TRL-style.

One flat recipe serves every stage: a stage takes its own keys and passes over keys that belong
to another stage; a key no stage knows is an error naming the key and the closest known one.
A setting given as a list where the stage expects one value is per iteration: element
`iteration` is used (the last one past the end), e.g. `tau: [0.5, 0.7]`.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from scpo.errors import ScpoError

# Every stage's settings dataclass, by dotted path, so stages can tell "another stage's key" from a typo.
STAGE_SETTINGS = (
    "scpo.stages.label:LabelSettings",
    "scpo.stages.reward:RewardSettings",
    "scpo.stages.pairs:PairsSettings",
    "scpo.stages.model:ModelSettings",
    "scpo.stages.sample:SampleSettings",
    "scpo.stages.generate:GenerateSettings",
    "scpo.stages.train:TrainSettings",
    "scpo.stages.grpo:GrpoSettings",
    "scpo.stages.eval:EvalSettings",
    "scpo.stages.loop:LoopSettings",
    "scpo.stages.slurm:SlurmSettings",
    "data_tools.convert:DataSettings",
)
# Keys the loop itself uses.
LOOP_KEYS = {"config", "iteration"}


def _field_names(path: str) -> set[str]:
    module, _, name = path.partition(":")
    try:
        cls = getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as e:
        if e.name != module:  # a broken import inside a stage is a bug, not "no such stage"
            raise
        return set()
    return {f.name for f in dataclasses.fields(cls)}


def known_keys(include_trainer: bool = True) -> set[str]:
    keys = set(LOOP_KEYS)
    for path in STAGE_SETTINGS:
        keys |= _field_names(path)
    if include_trainer:  # TRL's own settings are valid recipe keys for the train stage
        try:
            # slow import, only reached for an unknown key
            from trl import DPOConfig, GRPOConfig, ModelConfig

            keys |= {f.name for f in dataclasses.fields(DPOConfig)} | {f.name for f in dataclasses.fields(ModelConfig)}
            keys |= {f.name for f in dataclasses.fields(GRPOConfig)}
        except ImportError:
            pass
    return keys


def _base_type(tp: Any) -> tuple[Any, bool]:
    """(the non-None type, whether None is allowed)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return (args[0] if len(args) == 1 else str), True
    return tp, False


def _convert(name: str, raw: Any, tp: Any) -> Any:
    base, optional = _base_type(tp)
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
        if base in (int, float, str):
            return base(raw)
        return raw
    except (TypeError, ValueError) as e:
        raise ScpoError(f"setting {name}={raw!r}: {e}") from None


def _accepts_list(tp: Any) -> bool:
    """Whether a field type admits a list (list[str], or str | list[str] as TRL's report_to)."""
    if tp in (list, tuple) or typing.get_origin(tp) in (list, tuple):
        return True
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return any(_accepts_list(a) for a in typing.get_args(tp))
    return False


def _per_iteration(name: str, value: Any, tp: Any, iteration: int) -> Any:
    base, _ = _base_type(tp)
    if isinstance(value, list) and not _accepts_list(tp):
        if not value:
            raise ScpoError(f"setting {name}: empty per-iteration list")
        return value[min(iteration, len(value) - 1)]
    if isinstance(value, str) and "," in value and base in (int, float):
        return _per_iteration(name, value.split(","), tp, iteration)
    return value


def split_argv(argv: list[str]) -> tuple[str | None, dict[str, Any]]:
    """`--config f.yaml --a 1 --flag --b=2` -> ('f.yaml', {'a': '1', 'flag': True, 'b': '2'})."""
    config, values, i = None, {}, 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--"):
            if i == 0 and arg.endswith((".yaml", ".yml")):
                config = arg
                i += 1
                continue
            raise ScpoError(f"unexpected argument {arg!r}: settings are given as --name value")
        key, eq, val = arg[2:].partition("=")
        key = key.replace("-", "_")
        if not eq:
            if i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                val, i = argv[i + 1], i + 1
            else:
                val = True
        if key == "config":
            config = val
        else:
            values[key] = val
        i += 1
    return config, values


def load_recipe(path: str | None) -> dict[str, Any]:
    if path is None:
        return {}
    p = Path(path)
    if not p.exists():
        raise ScpoError(f"recipe {p}: file not found")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise ScpoError(f"recipe {p}: invalid YAML ({e})") from None
    if not isinstance(data, dict):
        raise ScpoError(f"recipe {p}: expected a mapping of setting: value")
    return data


def check_keys(keys: set[str], mine: set[str], source: str) -> None:
    foreign = keys - mine
    if not foreign:
        return
    everything = known_keys(include_trainer=False)
    if foreign - everything:
        everything = known_keys(include_trainer=True)
    for key in sorted(foreign - everything):
        close = difflib.get_close_matches(key, sorted(everything | mine), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ScpoError(f"unknown setting {key!r} in {source}{hint}")


def parse_settings(cls: type, argv: list[str]) -> Any:
    """Builds `cls` (a dataclass with an `iteration` field) from a recipe and command-line overrides."""
    config, cli = split_argv(argv)
    recipe = load_recipe(config)
    hints = typing.get_type_hints(cls)
    mine = {f.name for f in dataclasses.fields(cls)}
    check_keys(set(recipe), mine, f"recipe {config}")
    check_keys(set(cli), mine, "the command line")
    merged = {k: v for k, v in {**recipe, **cli}.items() if k in mine}
    iteration = int(merged.get("iteration", 0) or 0)
    values = {}
    for name, raw in merged.items():
        raw = _per_iteration(name, raw, hints[name], iteration)
        values[name] = _convert(name, raw, hints[name])
    try:
        return cls(**values)
    except TypeError as e:
        raise ScpoError(f"settings for {cls.__name__}: {e}") from None


def asdict(settings: Any) -> dict[str, Any]:
    return dataclasses.asdict(settings)
