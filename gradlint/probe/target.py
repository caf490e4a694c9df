"""Resolve `file.py:Name` / `pkg.module:name` targets; runs in the child (imports user code)."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gradlint.probe.stats import Location

if TYPE_CHECKING:
    from torch import nn


class TargetError(Exception):
    """The target string is malformed or does not name a usable object."""


def split_target(text: str) -> tuple[str, str]:
    """'models/mlp.py:MLP' -> ('models/mlp.py', 'MLP'); also 'pkg.mod:factory'."""
    source, sep, attr = text.rpartition(":")
    if not sep or not source or not attr or not all(p.isidentifier() for p in attr.split(".")):
        raise TargetError(
            f"target must look like path/to/file.py:ClassName or "
            f"package.module:factory, got {text!r}"
        )
    return source, attr


def is_file_target(source: str) -> bool:
    return source.endswith(".py") or "/" in source or os.sep in source


def import_object(text: str, cwd: str | None = None) -> Any:
    """Import the module part of `text` and return the named attribute (runs user code)."""
    source, attr = split_target(text)
    base = Path(cwd or os.getcwd())
    if is_file_target(source):
        path = (base / source).resolve()
        if not path.is_file():
            raise TargetError(f"no such file: {source}")
        module_name = f"_gradlint_target_{path.stem}"
        if module_name in sys.modules and getattr(
            sys.modules[module_name], "__file__", None
        ) == str(path):
            module = sys.modules[module_name]
        else:
            sys.path.insert(0, str(path.parent))  # so the file's sibling imports work
            spec = importlib.util.spec_from_file_location(module_name, path)
            if spec is None or spec.loader is None:
                raise TargetError(f"cannot import {source}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
    else:
        if str(base) not in sys.path:
            sys.path.insert(0, str(base))
        module = importlib.import_module(source)
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise TargetError(f"{source} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def build_model(obj: Any, init_args: dict[str, Any], name: str) -> tuple[nn.Module, Location]:
    """Instantiate a module class or call a factory; locate the definition findings point at."""
    from torch import nn

    if not callable(obj):
        raise TargetError(f"{name} is not a class or a callable")
    if isinstance(obj, type) and not issubclass(obj, nn.Module):
        raise TargetError(f"{name} is a class but not an nn.Module subclass")
    model = obj(**init_args)
    if not isinstance(model, nn.Module):
        raise TargetError(f"{name}(...) returned {type(model).__name__}, not an nn.Module")
    return model, model_location(model, obj)


def model_location(model: nn.Module, obj: Any) -> Location:
    """The user's class when it has one; else the factory that built the model.

    A model whose class comes from an installed package (torch, transformers, timm) is the
    user's through the factory: findings point there, and its file is cross-checked."""
    if not is_torch_defined(type(model)):
        location = locate_class(type(model))
        if location.file is not None and not (
            obj is not type(model) and is_installed_file(location.file)
        ):
            return location
    return locate_class(obj)


def is_installed_file(path: str) -> bool:
    """Inside site-packages/dist-packages: a library's code, not the project's."""
    return bool({"site-packages", "dist-packages"} & set(Path(path).parts))


def locate_class(obj: Any) -> Location:
    """The `class`/`def` statement of `obj`, or a placeholder when it has no Python source."""
    try:
        file = inspect.getsourcefile(obj)
        lines, start = inspect.getsourcelines(obj)
    except (OSError, TypeError):
        return Location(
            path=f"<{getattr(obj, '__name__', 'model')}>",
            line=1,
            name=getattr(obj, "__name__", "model"),
        )
    if file is None:
        return Location(path="<unknown>", line=1, name=getattr(obj, "__name__", "model"))
    start = max(start, 1)
    offset = next(
        (
            i
            for i, text in enumerate(lines)
            if text.lstrip().startswith(("class ", "def ", "async def "))
        ),
        0,
    )
    first = lines[offset].rstrip("\n") if lines else ""
    absolute = os.path.abspath(file)
    shown = os.path.relpath(absolute) if absolute.startswith(os.getcwd() + os.sep) else absolute
    return Location(
        path=shown,
        line=start + offset,
        end_line=start + len(lines) - 1,
        name=getattr(obj, "__qualname__", "model"),
        end_column=len(first) + 1,
        file=absolute,
    )


def is_torch_defined(obj: Any) -> bool:
    return (getattr(obj, "__module__", "") or "").split(".")[0] == "torch"
