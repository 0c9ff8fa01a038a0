"""Registries: labelers, losses, rewards, tasks and adaptive rules, found by name.

An entry is one file: `scpo/<kind package>/<name>.py` defines a subclass of the kind's base class
whose `name` is the file's name, and nothing else needs editing for `<kind>: <name>` to work in a
recipe. User code is named by a dotted path, `mypkg.module:MyClass` (or `mypkg.module.MyClass`); a registry with
an `adapt` hook also takes other objects there (the rewards: a plain TRL reward function, wrapped).
Modules whose names start with `_` hold what the entries share and are not entries.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Generic, TypeVar

from scpo.core.errors import ScpoError, did_you_mean

T = TypeVar("T", bound=type)


class Registry(Generic[T]):
    def __init__(
        self,
        kind: str,
        package: str,
        base: type,
        setting: str | None = None,
        adapt: Callable[[object, str], type] | None = None,
    ):
        self.kind, self.package, self.base = kind, package, base
        self.setting = setting or kind  # the recipe key that names an entry, for error messages
        # adapt(obj, path): a `base` subclass for a dotted path's object that is not one (a named ScpoError if none)
        self.adapt = adapt
        self._classes: dict[str, type] = {}

    def names(self) -> list[str]:
        """The built-in entries: the package's modules that do not start with `_`."""
        package = importlib.import_module(self.package)
        return sorted(m.name for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_"))

    def get(self, name: str) -> T:
        if name in self._classes:
            return self._classes[name]
        if ":" in name or "." in name:
            cls = self._import(name)
        elif name in self.names():
            module = importlib.import_module(f"{self.package}.{name}")
            found = [
                c
                for c in vars(module).values()
                if isinstance(c, type)
                and issubclass(c, self.base)
                and c is not self.base
                and getattr(c, "name", None) == name
            ]
            if not found:
                raise ScpoError(f"{module.__file__}: defines no {self.base.__name__} subclass with name = {name!r}")
            cls = next((c for c in found if c.__module__ == module.__name__), found[0])
        else:
            raise ScpoError(
                f"setting {self.setting}: unknown {self.kind} {name!r}{did_you_mean(name, self.names())}; "
                f"built in: {', '.join(self.names())}, or a dotted path module:Class to a "
                f"{self.base.__module__}.{self.base.__name__} subclass"
            )
        self._classes[name] = cls
        return cls

    def _import(self, path: str) -> type:
        module_name, _, attr = path.replace(":", ".").rpartition(".")
        try:
            cls = getattr(importlib.import_module(module_name), attr)
        except Exception as e:  # not found, or the user's module failed as it was imported: named, not a traceback
            raise ScpoError(
                f"setting {self.setting}: {self.kind} {path!r}: cannot import it ({type(e).__name__}: {e})"
            ) from None
        if not (isinstance(cls, type) and issubclass(cls, self.base)) and self.adapt is not None:
            return self.adapt(cls, path)
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise ScpoError(f"{self.kind} {path!r} is not a subclass of {self.base.__module__}.{self.base.__name__}")
        return cls

    def builtins(self) -> list[T]:
        return [self.get(name) for name in self.names()]
