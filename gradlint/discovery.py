"""Paths on the command line -> the sorted list of Python files and notebooks to lint."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from gradlint.config import DEFAULT_EXCLUDE, Config, relative_to_root
from gradlint.suppression import path_matcher

SUFFIXES = (".py", ".pyi", ".ipynb")
SKIPPED_FOLDERS = frozenset({".ipynb_checkpoints"})  # Jupyter's autosaved copies


class DiscoveryError(Exception):
    """A path on the command line that does not exist."""


def is_excluded(path: Path, config: Config) -> bool:
    return _excluded(relative_to_root(path, config.root), config)


def is_excluded_within(path: Path, config: Config) -> bool:
    """The file, or a folder between it and the project root, is excluded: a walk of the
    project would never reach it (files outside the root are matched by name only)."""
    relative = relative_to_root(path, config.root)
    if relative == path.as_posix() and path.is_absolute():
        return _excluded(relative, config)  # outside the root: no folders to walk through
    parts = relative.split("/")
    return any(_excluded("/".join(parts[: i + 1]), config) for i in range(len(parts)))


def _excluded(relative: str, config: Config) -> bool:
    # the built-in excludes always apply (the spec adds `exclude` to them); naming a folder
    # or file on the command line still lints it
    return path_matcher((*DEFAULT_EXCLUDE, *config.exclude, *config.extend_exclude))(relative)


def _is_virtualenv(folder: str) -> bool:
    return os.path.isfile(os.path.join(folder, "pyvenv.cfg"))


def discover(paths: Sequence[Path], config: Config) -> list[Path]:
    """Files named explicitly are always linted; folders are walked with the excludes applied."""
    found: set[Path] = set()
    for path in paths:
        if path.is_dir():
            found.update(_walk(path, config))
        elif path.is_file() or path.is_symlink():
            found.add(path)
        else:
            raise DiscoveryError(f"{path}: no such file or directory")
    return sorted(found, key=lambda p: p.as_posix())


def _walk(top: Path, config: Config) -> Iterable[Path]:
    for folder, dirs, files in os.walk(top):
        # paths below a folder are matched by their place in the tree (one resolve per folder)
        where = relative_to_root(Path(folder), config.root)
        prefix = "" if where == "." else where + "/"
        kept = []
        for name in sorted(dirs):
            full = os.path.join(folder, name)
            if name in SKIPPED_FOLDERS or _excluded(prefix + name, config) or _is_virtualenv(full):
                continue
            kept.append(name)
        dirs[:] = kept
        for name in sorted(files):
            if name.endswith(SUFFIXES) and not _excluded(prefix + name, config):
                yield Path(folder, name)
