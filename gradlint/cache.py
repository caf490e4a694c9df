"""Content-hash cache of per-file results, in `.gradlint_cache/`.

The key covers gradlint's version and code, the resolved configuration, the selected rules,
the file's path and its content: anything that can change a file's findings or summary. An
entry is written atomically; a corrupted or unreadable entry is ignored and rebuilt.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import enum
import hashlib
import json
import os
import shutil
import sys
import tempfile
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

try:
    from types import UnionType  # `X | Y` in annotations, Python 3.10+
except ImportError:  # pragma: no cover - Python 3.9
    UnionType = None  # type: ignore[assignment,misc]

from gradlint import __version__
from gradlint.findings import FileResult, finding_as_dict
from gradlint.project import FileSummary

CACHE_DIR_NAME = ".gradlint_cache"
_FORMAT = 1


def _code_fingerprint() -> str:
    """Size and mtime of gradlint's own modules, so editing a rule invalidates the cache."""
    package = Path(__file__).resolve().parent
    parts = []
    for folder in (package, package / "rules", package.parent / "rules"):
        if folder.is_dir():
            for file in sorted(folder.rglob("*.py")):
                stat = file.stat()
                parts.append(f"{file.name}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


class Cache:
    def __init__(self, folder: Path, settings: str) -> None:
        self.folder = folder
        self.salt = f"{_FORMAT}\0{code_stamp()}\0{settings}".encode()

    def key(self, path: str, data: bytes) -> str:
        digest = hashlib.sha256(self.salt)
        digest.update(path.encode("utf-8", "surrogateescape") + b"\0")
        digest.update(data)
        return digest.hexdigest()

    def _file(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> FileResult | None:
        try:
            with self._file(key).open(encoding="utf-8") as handle:
                return result_from_json(json.load(handle))
        except (OSError, ValueError, RecursionError, MemoryError):
            return None  # missing or damaged (JSON errors are ValueErrors): lint it again

    def put(self, key: str, result: FileResult) -> None:
        target = self._file(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            self._write_gitignore()
            fd, temp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(result_to_json(result), handle, separators=(",", ":"))
            os.replace(temp, target)
        except OSError:
            pass  # a read-only tree still lints; it just is not cached

    def _write_gitignore(self) -> None:
        write_gitignore(self.folder)


def write_gitignore(folder: Path) -> None:
    """Keep the cache folder out of version control."""
    marker = folder / ".gitignore"
    if not marker.exists():
        marker.write_text("# created by gradlint\n*\n", encoding="utf-8")


def code_stamp() -> str:
    """gradlint's version and the state of its code: what a cached catalogue is valid for."""
    return f"{__version__}\0{_code_fingerprint()}"


def clean(folder: Path) -> bool:
    """Delete a cache folder; True when there was one."""
    if not (folder / ".gitignore").exists() and not folder.is_dir():
        return False
    shutil.rmtree(folder, ignore_errors=True)
    return True


def result_to_json(result: FileResult) -> dict[str, Any]:
    return {
        "path": result.path,
        "findings": [finding_as_dict(f) for f in result.findings],
        "skipped": result.skipped,
        "source_lines": list(result.source_lines),
        "summary": None if result.summary is None else result.summary.to_json(),
    }


def result_from_json(data: object) -> FileResult:
    """A FileResult from its JSON form; ValueError when anything in it has the wrong shape or
    type (a damaged entry must be rebuilt, not crash a renderer later)."""
    result = _build(FileResult, data)
    assert isinstance(result, FileResult)
    return result


_TYPES: dict[type, dict[str, Any]] = {}
# fields an entry does not hold: a notebook's cells are mapped after the cache
_NOT_STORED: dict[type, set[str]] = {FileResult: {"cell_starts"}}


def _field_types(cls: type) -> dict[str, Any]:
    types = _TYPES.get(cls)
    if types is None:
        try:
            types = typing.get_type_hints(cls, localns={"FileSummary": FileSummary})
        except TypeError:  # Python 3.9 cannot evaluate `X | None`: take the union apart
            namespace = {**vars(typing), **vars(sys.modules[cls.__module__])}
            namespace["FileSummary"] = FileSummary
            types = {
                name: typing.Union[tuple(eval(part, namespace) for part in text.split(" | "))]
                for name, text in cls.__annotations__.items()
            }
        _TYPES[cls] = types
    return types


def _build(hint: Any, value: object) -> object:
    """`value` (parsed JSON) as an instance of `hint`, checked all the way down."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin is typing.Union or (UnionType is not None and origin is UnionType):
        for option in args:
            try:
                return _build(option, value)
            except ValueError:
                continue
        raise ValueError(f"{value!r} is none of {args}")
    if hint in (type(None), str, bool, int):  # exactly: True is no line number
        if type(value) is not hint:
            raise ValueError(f"{value!r} is not {hint.__name__}")
        return value
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint(value)  # ValueError for an unknown member
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if type(value) is not dict:
            raise ValueError(f"{hint.__name__} is not an object")
        types = _field_types(hint)
        known = {f.name for f in dataclasses.fields(hint)}
        if set(value) != known - _NOT_STORED.get(hint, set()):  # every stored field, no more
            raise ValueError(f"{hint.__name__} has the fields {sorted(value)}")
        return hint(**{name: _build(types[name], item) for name, item in value.items()})
    if origin is tuple:
        if type(value) is not list:
            raise ValueError(f"{value!r} is not a list")
        return tuple(_build(args[0], item) for item in value)
    if origin in (dict, Mapping, collections.abc.Mapping):
        if type(value) is not dict:
            raise ValueError(f"{value!r} is not an object")
        key_type, value_type = args
        keys = [int(k) if key_type is int else _build(key_type, k) for k in value]
        return {k: _build(value_type, v) for k, v in zip(keys, value.values())}
    raise ValueError(f"cannot check {hint!r}")  # a field type this checker does not know yet
