"""One lookup from a name to a class, for the rules, the pre-aggregation steps and the attacks.

A Registry scans the modules of one package (byzrun.defenses, byzrun.preaggregation,
byzrun.attacks) and collects every subclass of the package's base class defined there, keyed by the
`name` the class declares. Nothing is listed by hand: a module dropped into the package is found.
The scan runs on every lookup (lookups happen while a run is being built, never in the hot path),
so a module added to the package's path at run time is found too.
"""

from __future__ import annotations

import importlib
import pkgutil


class Registry:
    def __init__(self, package: str, base: type):
        self.package = package
        self.base = base

    def classes(self) -> dict[str, type]:
        """name -> class for every subclass of `base` defined in a module of the package."""
        found: dict[str, type] = {}
        package = importlib.import_module(self.package)
        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda info: info.name):
            module = importlib.import_module(f"{self.package}.{info.name}")
            for cls in vars(module).values():
                if not (isinstance(cls, type) and issubclass(cls, self.base) and cls is not self.base):
                    continue
                if cls.__module__ != module.__name__:
                    continue  # imported there, defined elsewhere
                name = vars(cls).get("name")
                if not isinstance(name, str):
                    raise TypeError(
                        f"{cls.__module__}.{cls.__qualname__} must declare its name: name = '...'"
                    )
                if name in found and found[name] is not cls:
                    other = found[name]
                    raise TypeError(
                        f"two classes declare name = {name!r}: {other.__module__}.{other.__qualname__} "
                        f"and {cls.__module__}.{cls.__qualname__}"
                    )
                found[name] = cls
        return found

    def names(self) -> list[str]:
        return sorted(self.classes())

    def get(self, name: str) -> type | None:
        """The class that declares `name`, or None."""
        return self.classes().get(name)

    def by_class_name(self, class_name: str) -> type | None:
        """The class called `class_name` (what a YAML's `_target_: <package>.<ClassName>` refers to)."""
        for cls in self.classes().values():
            if cls.__name__ == class_name:
                return cls
        return None
