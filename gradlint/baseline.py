"""Baselines: record today's findings so that CI fails only on new ones.

A finding is recognised by its file, its code and a fingerprint of the code around it (the
stripped source line and its two neighbours), never by its line number, so it survives
lines being added or removed above it. The file is JSON, written atomically:

    {"gradlint-baseline": 1, "findings": [{"path": "src/net.py", "code": "GL104",
                                            "fingerprint": "3f2a...", "count": 1}, ...]}
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from gradlint.config import relative_to_root
from gradlint.findings import FileResult, Finding
from gradlint.fixes import write_atomically
from gradlint.notebook import source_line

FORMAT = 1
Key = tuple[str, str, str]  # path relative to the project root, code, fingerprint


class BaselineError(Exception):
    """A baseline file that cannot be read or written."""


def fingerprint(result: FileResult, finding: Finding) -> str:
    """Hash of the code and the stripped lines around the finding; stable when lines move."""
    around = [source_line(result, finding, offset) for offset in (-1, 0, 1)]
    text = "\n".join([finding.code, *((line or "").strip() for line in around)])
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:20]


def keys(results: Sequence[FileResult], root: Path) -> Iterator[tuple[FileResult, Finding, Key]]:
    for result in results:
        if not result.findings:
            continue
        path = relative_to_root(Path(result.path), root)
        for finding in result.findings:
            yield result, finding, (path, finding.code, fingerprint(result, finding))


@dataclass(frozen=True)
class Filtered:
    results: list[FileResult]
    matched: int  # findings hidden because the baseline knows them
    stale: int  # baseline entries no finding matched any more (fixed since)


def write_baseline(target: Path, results: Sequence[FileResult], root: Path) -> int:
    """Write every current finding to `target`; returns how many were recorded."""
    counts = Counter(key for _, _, key in keys(results, root))
    entries = [
        {"path": path, "code": code, "fingerprint": fp, "count": count}
        for (path, code, fp), count in sorted(counts.items())
    ]
    text = json.dumps({"gradlint-baseline": FORMAT, "findings": entries}, indent=2) + "\n"
    try:  # beside the target, then rename: a failed run never leaves half a baseline
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(target, text)
    except OSError as exc:
        raise BaselineError(f"{target}: cannot write baseline: {exc.strerror or exc}") from exc
    return sum(counts.values())


def read_baseline(source: Path) -> Counter[Key]:
    try:
        document = json.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise BaselineError(
            f"{source}: baseline not found; create it with `gradlint --write-baseline {source}`"
        ) from exc
    except (OSError, ValueError) as exc:
        raise BaselineError(f"{source}: cannot read baseline: {exc}") from exc
    if not isinstance(document, dict) or document.get("gradlint-baseline") != FORMAT:
        raise BaselineError(f"{source}: not a gradlint baseline (format {FORMAT} expected)")
    counts: Counter[Key] = Counter()
    try:
        for entry in document["findings"]:
            key = (str(entry["path"]), str(entry["code"]), str(entry["fingerprint"]))
            counts[key] += int(entry.get("count", 1))
    except (KeyError, TypeError, ValueError) as exc:
        raise BaselineError(f"{source}: damaged baseline entry: {exc}") from exc
    return counts


def apply_baseline(results: Sequence[FileResult], known: Counter[Key], root: Path) -> Filtered:
    """Drop findings the baseline knows (each entry absorbs at most `count` findings)."""
    left = Counter(known)
    hidden: set[int] = set()
    for _, finding, key in keys(results, root):
        if left[key] > 0:
            left[key] -= 1
            hidden.add(id(finding))
    filtered = [
        replace(r, findings=tuple(f for f in r.findings if id(f) not in hidden))
        if any(id(f) in hidden for f in r.findings)
        else r
        for r in results
    ]
    return Filtered(filtered, matched=len(hidden), stale=sum(left.values()))
