"""Content-hash cache of per-file results, in `.gradlint_cache/`.

The key covers gradlint's version and code, the resolved configuration, the selected rules,
the file's path and its content: anything that can change a file's findings or summary. An
entry is written atomically; a corrupted or unreadable entry is ignored and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from gradlint import __version__
from gradlint.findings import Edit, FileResult, Finding, Fix, Severity, finding_as_dict
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
        except (OSError, ValueError, KeyError, TypeError):
            return None  # missing or damaged: lint the file again

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


def finding_from_json(data: dict[str, Any]) -> Finding:
    fix = data.get("fix")
    return Finding(
        **{k: v for k, v in data.items() if k not in ("severity", "fix")},
        severity=Severity(data["severity"]),
        fix=None if fix is None else Fix(fix["message"], tuple(Edit(**e) for e in fix["edits"])),
    )


def result_to_json(result: FileResult) -> dict[str, Any]:
    return {
        "path": result.path,
        "findings": [finding_as_dict(f) for f in result.findings],
        "skipped": result.skipped,
        "source_lines": list(result.source_lines),
        "summary": None if result.summary is None else result.summary.to_json(),
    }


def result_from_json(data: dict[str, Any]) -> FileResult:
    summary = data["summary"]
    return FileResult(
        path=data["path"],
        findings=tuple(finding_from_json(f) for f in data["findings"]),
        skipped=data["skipped"],
        source_lines=tuple(data["source_lines"]),
        summary=None if summary is None else FileSummary.from_json(summary),
    )
