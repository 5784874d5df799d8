"""The public surface: `sidecar.__all__` is exact and sorted; every module declares a true `__all__`."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

import sidecar

# Every module, in subpackages too ("telemetry.logs"); packages themselves only group modules.
MODULE_NAMES = sorted(
    m.name.removeprefix("sidecar.")
    for m in pkgutil.walk_packages(sidecar.__path__, "sidecar.")
    if not m.ispkg and not m.name.endswith("__main__")
)


def _public_names(package: ModuleType) -> list[str]:
    """Names the package defines for users: imported from its own modules, plus `__version__`.

    `dir()`, not `vars()`: the package loads its names on first use (a module `__getattr__`),
    and `getattr` loads each one, so a name pointing at the wrong module fails here."""
    names = ["__version__"]
    for name in dir(package):
        value = getattr(package, name)
        if name.startswith("_") or inspect.ismodule(value):
            continue
        if getattr(value, "__module__", "").startswith("sidecar."):
            names.append(name)
    return sorted(names)


def test_package_all_is_sorted_and_unique() -> None:
    assert sidecar.__all__ == sorted(sidecar.__all__)
    assert len(set(sidecar.__all__)) == len(sidecar.__all__)


def test_package_all_is_exactly_the_public_names() -> None:
    assert sidecar.__all__ == _public_names(sidecar)


def test_package_exports_come_from_module_exports() -> None:
    declared = {
        name
        for module_name in MODULE_NAMES
        for name in importlib.import_module(f"sidecar.{module_name}").__all__
    }
    assert set(sidecar.__all__) - {"__version__"} <= declared
    assert isinstance(sidecar.__version__, str) and sidecar.__version__


def test_there_are_modules_to_check() -> None:
    assert {"backoff", "errors", "events", "health", "state"} <= set(MODULE_NAMES)


@pytest.mark.parametrize("module_name", MODULE_NAMES)
def test_module_declares_all_and_every_name_exists(module_name: str) -> None:
    module = importlib.import_module(f"sidecar.{module_name}")
    exported = getattr(module, "__all__", None)
    assert isinstance(exported, list | tuple), f"sidecar.{module_name} declares no __all__"
    assert len(set(exported)) == len(exported), f"duplicates in sidecar.{module_name}.__all__"
    missing = [name for name in exported if not hasattr(module, name)]
    assert not missing, f"sidecar.{module_name}.__all__ names missing attributes: {missing}"
