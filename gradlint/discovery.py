"""Paths on the command line -> the sorted list of Python files and notebooks to lint; and
reading one of them, which must never block."""

from __future__ import annotations

import errno
import os
import stat
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


def discover(paths: Sequence[Path], config: Config, notes: list[str] | None = None) -> list[Path]:
    """Files named explicitly are always linted; folders are walked with the excludes applied.

    What a walk passes over for a reason the user should hear (a folder it cannot read, a
    FIFO or device named like a Python file) is added to `notes`, one line each.
    """
    found: set[Path] = set()
    heard = notes if notes is not None else []
    for path in paths:
        if path.is_dir():
            found.update(_walk(path, config, heard))
        elif path.is_file() or path.is_symlink() or path.exists():
            found.add(path)  # anything but a regular file is reported when it is read
        else:
            raise DiscoveryError(f"{path}: no such file or directory")
    return sorted(found, key=lambda p: p.as_posix())


def _walk(top: Path, config: Config, notes: list[str]) -> Iterable[Path]:
    folders = [os.fspath(top)]
    while folders:
        folder = folders.pop()
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError as exc:
            notes.append(f"{folder}: cannot read folder ({exc.strerror or exc}); skipped")
            continue
        # paths below a folder are matched by their place in the tree (one resolve per folder)
        where = relative_to_root(Path(folder), config.root)
        prefix = "" if where == "." else where + "/"
        below = []
        for entry in entries:
            name = entry.name
            if _is_dir(entry):
                if entry.is_symlink() or name in SKIPPED_FOLDERS:
                    continue  # links to folders are not followed (loops, trees elsewhere)
                if _excluded(prefix + name, config) or _is_virtualenv(entry.path):
                    continue
                below.append(entry.path)
            elif name.endswith(SUFFIXES) and not _excluded(prefix + name, config):
                if entry.is_symlink() or _is_regular(entry):
                    yield Path(folder, name)  # a broken link is reported when it is read
                else:
                    kind = "not a regular file (a FIFO, socket or device)"
                    notes.append(f"{entry.path}: {kind}; skipped")
        folders.extend(reversed(below))


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _is_regular(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_file(follow_symlinks=False)
    except OSError:
        return False


def read_source(path: Path) -> bytes:
    """The bytes of the regular file at `path`; OSError for anything else. Opening does not
    wait for a writer, so a FIFO named `*.py` is refused instead of blocking the run."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "is a folder")
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, "not a regular file (a FIFO, socket or device)")
        chunks: list[bytes] = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)
