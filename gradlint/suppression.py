"""`# noqa` comments, `# gradlint: skip-file` and per-file-ignores, applied after the rules."""

from __future__ import annotations

import fnmatch
import functools
import io
import re
import tokenize
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from pathlib import Path

from gradlint.config import Config, relative_to_root
from gradlint.findings import Finding

_NOQA = re.compile(
    r"#\s*noqa(?::[\s]?(?P<codes>[A-Z]+[0-9]+(?:[,\s]+[A-Z]+[0-9]+)*))?", re.IGNORECASE
)
_SKIP_FILE = re.compile(r"#\s*gradlint\s*:\s*skip-file\b", re.IGNORECASE)
ALL = frozenset({"*"})


def _comments(source: str) -> Iterable[tuple[int, str]]:
    """(line, text) of every comment; falls back to a line scan if tokenizing fails."""
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.COMMENT:
                yield token.start[0], token.string
    except (tokenize.TokenError, IndentationError, SyntaxError):
        for number, line in enumerate(source.splitlines(), start=1):
            if "#" in line:
                yield number, line[line.index("#") :]


def has_skip_file(source: str) -> bool:
    if "skip-file" not in source.lower():  # as case-blind as _SKIP_FILE
        return False  # fast path: most files have no such comment
    return any(_SKIP_FILE.search(text) for _, text in _comments(source))


def noqa_lines(source: str) -> dict[int, frozenset[str]]:
    """line -> codes suppressed there (`ALL` for a bare `# noqa`)."""
    if "noqa" not in source.lower():
        return {}
    result: dict[int, frozenset[str]] = {}
    for line, text in _comments(source):
        match = _NOQA.search(text)
        if match is None:
            continue
        codes = match.group("codes")
        if codes is None:
            result[line] = ALL
        else:
            result[line] = frozenset(c.upper() for c in re.split(r"[,\s]+", codes) if c)
    return result


def is_suppressed(finding: Finding, noqa: Mapping[int, Collection[str]]) -> bool:
    codes = noqa.get(finding.line)
    if codes is None:
        return False
    return "*" in codes or any(finding.code.startswith(code) for code in codes)


def path_matches(relative: str, pattern: str) -> bool:
    """gitignore-like matching: a pattern without '/' matches the last path component."""
    return path_matcher((pattern,))(relative)


@functools.lru_cache(maxsize=32)
def path_matcher(patterns: tuple[str, ...]) -> Callable[[str], bool]:
    """One compiled test for "does a relative path match any of these patterns?"."""
    names, paths = [], []
    for pattern in patterns:
        bare = pattern.rstrip("/")
        if "/" not in bare:
            names.append(fnmatch.translate(bare))
        else:
            pattern = pattern.removeprefix("./")
            paths += [fnmatch.translate(pattern), fnmatch.translate(pattern.rstrip("/") + "/*")]
    name_re = re.compile("|".join(names)) if names else None
    path_re = re.compile("|".join(paths)) if paths else None

    def matches(relative: str) -> bool:
        if name_re is not None and name_re.match(relative.rsplit("/", 1)[-1]):
            return True
        return path_re is not None and path_re.match(relative) is not None

    return matches


def is_test_path(path: str, config: Config) -> bool:
    """Whether the file is test code by `test-paths` (a pattern without '/' may match any
    folder on the way, so `tests` covers `tests/unit/test_x.py`)."""
    if not config.test_paths:
        return False
    relative = relative_to_root(Path(path), config.root)
    matches = path_matcher(config.test_paths)
    parts = relative.split("/")
    return any(matches("/".join(parts[: i + 1])) for i in range(len(parts)))


def ignored_by_path(
    finding: Finding, relative: str, per_file_ignores: Sequence[tuple[str, tuple[str, ...]]]
) -> bool:
    for pattern, selectors in per_file_ignores:
        if path_matches(relative, pattern) and any(
            finding.code.startswith(s.upper()) or s.upper() == "ALL" or s.lower() == finding.name
            for s in selectors
        ):
            return True
    return False


def keep_unsuppressed(
    findings: Sequence[Finding], noqa: Mapping[int, Collection[str]], config: Config
) -> list[Finding]:
    """Drop findings silenced by `# noqa` or per-file-ignores, sorted by position."""
    if not findings:
        return []
    relative = relative_to_root(Path(findings[0].path), config.root)
    kept = [
        f
        for f in findings
        if not is_suppressed(f, noqa) and not ignored_by_path(f, relative, config.per_file_ignores)
    ]
    return sorted(kept, key=lambda f: f.sort_key)
