"""Recall and precision of every rule on labelled real code (benchmarks/quality/sources).

    python benchmarks/quality.py                     # every manifest, the installed gradlint
    python benchmarks/quality.py --show missed       # also list the bugs no finding hits
    python benchmarks/quality.py --show unjudged     # findings no label or verdict covers
    python benchmarks/quality.py --sources DIR --gradlint .venv/bin/gradlint

The manifests (benchmarks/quality/README.md) pin real public code by repository, commit and path;
the code itself is extracted at run time from git mirrors (or PyPI sdists) into a cache folder and
never committed. Each tree is linted once with every rule, preview ones included: recall counts
them all; clean files flagged and precision count the default rules (what users see). A finding
is judged true when it hits a labelled bug or a `tp` verdict, false on a clean file or with an
`fp` verdict, and unjudged otherwise. This prints numbers; it is not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

HERE = Path(__file__).resolve().parent
DEFAULT_SOURCES = HERE / "quality" / "sources"
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "gradlint-quality"
DEFAULT_MIRRORS = Path(os.environ.get("GRADLINT_MIRRORS", "/work/.mirror"))
KEPT = (".py", ".pyi", ".ipynb", ".toml", ".cfg", ".ini", ".yaml", ".yml", ".json", ".txt", ".md")
COMMIT = re.compile(r"^[0-9a-f]{40}$")
RULE = re.compile(r"^GL\d{3}$")


class ManifestError(Exception):
    """A manifest that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class Bug:
    tree: str
    path: str
    rule: str
    lines: tuple[int, ...]
    cell: int | None
    note: str


@dataclass(frozen=True)
class Verdict:
    tree: str
    path: str
    rule: str
    line: int
    cell: int | None
    true: bool
    note: str


@dataclass
class Tree:
    """One repository at one commit: what is linted there and how it is judged."""

    key: str  # "<owner>__<name>@<commit12>" or "pypi:<name>==<version>"
    source: str
    commit: str | None
    world: str
    manifest: Path
    corpus_paths: set[str] = field(default_factory=set)
    clean_paths: set[str] = field(default_factory=set)
    triage_paths: list[str] = field(default_factory=list)
    root: Path | None = None


@dataclass
class Corpus:
    trees: dict[str, Tree] = field(default_factory=dict)
    bugs: list[Bug] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _tree(corpus: Corpus, data: dict[str, Any], manifest: Path, commit: str | None) -> Tree:
    source = data["source"]
    if source.startswith("pypi:"):
        key = source
    else:
        key = f"{source.removeprefix('github:').replace('/', '__')}@{(commit or '')[:12]}"
    if key not in corpus.trees:
        corpus.trees[key] = Tree(key, source, commit, data.get("world", "?"), manifest)
    return corpus.trees[key]


def _lines(entry: dict[str, Any], where: str) -> tuple[int, ...]:
    lines = entry.get("lines", entry.get("line"))
    if isinstance(lines, int):
        lines = [lines]
    if not isinstance(lines, list) or not lines or not all(isinstance(n, int) for n in lines):
        raise ManifestError(f"{where}: `lines` must be a non-empty list of line numbers")
    return tuple(lines)


def load_manifest(path: Path, corpus: Corpus) -> None:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ManifestError(f"{path}: {error}") from None
    source = data.get("source")
    if not isinstance(source, str) or not source.startswith(("github:", "pypi:")):
        raise ManifestError(f"{path}: `source` must be 'github:owner/name' or 'pypi:name==version'")
    top_commit = data.get("commit")
    if source.startswith("github:") and not (
        isinstance(top_commit, str) and COMMIT.match(top_commit)
    ):
        raise ManifestError(f"{path}: `commit` must be 40 lowercase hex digits")

    def commit_of(entry: dict[str, Any], where: str) -> str | None:
        commit = entry.get("commit", top_commit)
        if source.startswith("github:") and not (isinstance(commit, str) and COMMIT.match(commit)):
            raise ManifestError(f"{where}: `commit` must be 40 lowercase hex digits")
        return commit if source.startswith("github:") else None

    for number, entry in enumerate(data.get("bug", []), 1):
        where = f"{path}: bug {number}"
        rule = entry.get("rule")
        if not (isinstance(rule, str) and RULE.match(rule)) or not isinstance(
            entry.get("path"), str
        ):
            raise ManifestError(f"{where}: needs `path` and a `rule` like 'GL106'")
        tree = _tree(corpus, data, path, commit_of(entry, where))
        tree.corpus_paths.add(entry["path"])
        corpus.bugs.append(
            Bug(
                tree.key,
                entry["path"],
                rule,
                _lines(entry, where),
                entry.get("cell"),
                entry.get("note", ""),
            )
        )
    for number, entry in enumerate(data.get("clean", []), 1):
        where = f"{path}: clean {number}"
        if not isinstance(entry.get("path"), str):
            raise ManifestError(f"{where}: needs `path`")
        tree = _tree(corpus, data, path, commit_of(entry, where))
        tree.corpus_paths.add(entry["path"])
        tree.clean_paths.add(entry["path"])
    if data.get("triage"):
        tree = _tree(corpus, data, path, top_commit)
        tree.triage_paths = list(data.get("triage-paths", ["."]))
    for number, entry in enumerate(data.get("verdict", []), 1):
        where = f"{path}: verdict {number}"
        rule, verdict = entry.get("rule"), entry.get("verdict")
        if not (isinstance(rule, str) and RULE.match(rule)) or verdict not in ("tp", "fp"):
            raise ManifestError(f"{where}: needs `rule` like 'GL104' and `verdict` 'tp' or 'fp'")
        if not isinstance(entry.get("path"), str) or not isinstance(entry.get("line"), int):
            raise ManifestError(f"{where}: needs `path` and `line`")
        tree = _tree(corpus, data, path, commit_of(entry, where))
        corpus.verdicts.append(
            Verdict(
                tree.key,
                entry["path"],
                rule,
                entry["line"],
                entry.get("cell"),
                verdict == "tp",
                entry.get("note", ""),
            )
        )


# -- getting the code ---------------------------------------------------------------------------


def _git_dir(mirrors: Path, source: str) -> Path | None:
    folder = mirrors / source.removeprefix("github:").replace("/", "+")
    for candidate in (folder / "repo", folder / "repo" / ".git", folder, *sorted(folder.glob("*"))):
        if (candidate / "HEAD").is_file() and (candidate / "objects").is_dir():
            return candidate
    return None


def extract_commit(git_dir: Path, commit: str, target: Path) -> bool:
    """Write the commit's source files and configs under target (mirrors lack big blobs)."""
    listing = subprocess.run(
        ["git", "--git-dir", str(git_dir), "ls-tree", "-r", "-z", commit], capture_output=True
    )
    if listing.returncode != 0:
        return False
    wanted = []
    for entry in listing.stdout.split(b"\0"):
        if not entry:
            continue
        meta, _, name = entry.partition(b"\t")
        mode, kind, blob = meta.split()
        path = name.decode("utf-8", "replace")
        if kind == b"blob" and mode != b"120000" and path.endswith(KEPT):
            wanted.append((blob.decode(), path))
    batch = subprocess.run(
        ["git", "--git-dir", str(git_dir), "cat-file", "--batch"],
        input="".join(f"{blob}\n" for blob, _ in wanted).encode(),
        capture_output=True,
    )
    out, at = batch.stdout, 0
    for _, path in wanted:
        header_end = out.index(b"\n", at)
        header = out[at:header_end].split()
        at = header_end + 1
        if len(header) < 3 or header[1] == b"missing":
            continue  # a blob the mirror leaves out (large files)
        size = int(header[2])
        destination = target / path
        if ".." in Path(path).parts:
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(out[at : at + size])
        at += size + 1
    return True


def materialise(tree: Tree, mirrors: Path, cache: Path) -> str | None:
    """Extract the tree into the cache; return why it cannot be had, or None."""
    target = cache / tree.key.replace(":", "_").replace("==", "-")
    marker = target / ".gradlint-quality-complete"
    if marker.exists():
        tree.root = target
        return None
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    if tree.source.startswith("github:"):
        git_dir = _git_dir(mirrors, tree.source)
        if git_dir is None:
            return f"no mirror of {tree.source} under {mirrors} (fetch it)"
        if not extract_commit(git_dir, str(tree.commit), target):
            return f"{tree.source}: commit {tree.commit} not in the mirror"
    else:
        with tempfile.TemporaryDirectory() as download:
            spec = tree.source.removeprefix("pypi:")
            got = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "-q",
                    "--no-deps",
                    "--no-binary",
                    ":all:",
                    "-d",
                    download,
                    spec,
                ],
                capture_output=True,
                text=True,
            )
            sdists = list(Path(download).glob("*.tar.gz"))
            if got.returncode != 0 or not sdists:
                return f"{tree.source}: pip download failed"
            with tarfile.open(sdists[0]) as tar:
                tar.extractall(download, filter="data")
            (top,) = [p for p in Path(download).iterdir() if p.is_dir()]
            shutil.rmtree(target)
            shutil.copytree(top, target)
    marker.touch()
    tree.root = target
    return None


# -- linting ------------------------------------------------------------------------------------


def _installed_gradlint() -> str:
    """The gradlint on PATH, else the one beside this interpreter (a venv not activated)."""
    beside = Path(sys.executable).parent / "gradlint"
    return shutil.which("gradlint") or (str(beside) if beside.is_file() else "gradlint")


def has_preview(gradlint: str) -> bool:
    out = subprocess.run([gradlint, "check", "--help"], capture_output=True, text=True).stdout
    return "--preview" in out


def default_codes(gradlint: str) -> set[str]:
    """The codes of the rules that run without being selected (not preview, not off)."""
    out = subprocess.run([gradlint, "rules"], capture_output=True, text=True).stdout
    codes = {"GL000", "GL001"}
    for line in out.splitlines():
        if line.startswith("GL") and not line.rstrip().endswith(("(preview)", "(off by default)")):
            codes.add(line.split()[0])
    return codes


def lint(
    gradlint: str, root: Path, paths: list[str], every_rule: bool, preview: bool
) -> list[dict[str, Any]]:
    existing = [p for p in paths if (root / p).exists()]
    if not existing:
        return []
    command = [gradlint, "check", "--no-cache", "--format", "json", "--exit-zero", "-j", "1", "-q"]
    if every_rule:
        command += ["--select", "GL"] + (["--preview"] if preview else [])
    result = subprocess.run(command + existing, cwd=root, capture_output=True, text=True)
    if result.returncode not in (0, 1):
        print(f"warning: gradlint failed on {root}: {result.stderr.strip()[:300]}", file=sys.stderr)
        return []
    findings = json.loads(result.stdout or "[]")
    for finding in findings:
        finding["path"] = os.path.normpath(finding["path"])
    return findings


# -- scoring ------------------------------------------------------------------------------------


def hits(
    finding: dict[str, Any], path: str, rule: str, lines: tuple[int, ...], cell: int | None
) -> bool:
    return (
        finding["code"] == rule
        and finding["path"] == os.path.normpath(path)
        and finding["line"] in lines
        and (cell is None or finding.get("cell") == cell)
    )


def percent(part: int, whole: int) -> str:
    return f"{part / whole:6.2f}" if whole else "     -"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sources", action="append", type=Path, help="manifest folder (repeatable)"
    )
    parser.add_argument("--gradlint", default=_installed_gradlint())
    parser.add_argument("--mirrors", type=Path, default=DEFAULT_MIRRORS)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument(
        "--show", action="append", default=[], choices=["missed", "unjudged", "fp", "triage"]
    )
    parser.add_argument("--json", type=Path, help="write the per-rule numbers here")
    args = parser.parse_args()
    if os.sep in args.gradlint:
        args.gradlint = os.path.abspath(args.gradlint)  # it runs from each tree's root
    if not shutil.which(args.gradlint):
        print(
            f"quality.py: no gradlint command at {args.gradlint!r}; install the project "
            "(pip install -e .) or pass --gradlint PATH",
            file=sys.stderr,
        )
        return 2

    corpus = Corpus()
    manifests = sorted(
        p for folder in (args.sources or [DEFAULT_SOURCES]) for p in folder.glob("*.toml")
    )
    for manifest in manifests:
        try:
            load_manifest(manifest, corpus)
        except ManifestError as error:
            corpus.errors.append(str(error))
    missing = []
    for tree in corpus.trees.values():
        why = materialise(tree, args.mirrors, args.cache)
        if why:
            missing.append(why)

    preview = has_preview(args.gradlint)
    on_by_default = default_codes(args.gradlint)
    every: dict[str, list[dict[str, Any]]] = {}
    default: dict[str, list[dict[str, Any]]] = {}
    for key, tree in sorted(corpus.trees.items()):
        if tree.root is None:
            continue
        paths = sorted(tree.corpus_paths) + tree.triage_paths
        every[key] = lint(args.gradlint, tree.root, paths, every_rule=True, preview=preview)
        default[key] = [f for f in every[key] if f["code"] in on_by_default]

    # recall, over every rule
    recall: dict[str, Counter[str]] = defaultdict(Counter)
    missed = []
    for bug in corpus.bugs:
        if bug.tree not in every:
            continue
        found = every[bug.tree]
        in_file = [
            f for f in found if f["code"] == bug.rule and f["path"] == os.path.normpath(bug.path)
        ]
        on_line = [f for f in in_file if hits(f, bug.path, bug.rule, bug.lines, bug.cell)]
        recall[bug.rule]["bugs"] += 1
        recall[bug.rule]["file"] += bool(in_file)
        recall[bug.rule]["line"] += bool(on_line)
        if not on_line:
            missed.append((bug, bool(in_file)))

    # precision and clean files, over the default rules
    judged: dict[str, Counter[str]] = defaultdict(Counter)
    clean_flagged: Counter[str] = Counter()
    clean_files = 0
    flagged_files = set()
    unjudged, false_positives, triage_rows = [], [], []
    verdicts = defaultdict(list)
    for verdict in corpus.verdicts:
        verdicts[(verdict.tree, os.path.normpath(verdict.path), verdict.rule, verdict.line)].append(
            verdict
        )
    for key, findings in default.items():
        tree = corpus.trees[key]
        clean = {os.path.normpath(p) for p in tree.clean_paths}
        clean_files += len(clean)
        tree_bugs = [b for b in corpus.bugs if b.tree == key]
        for finding in findings:
            rule, path = finding["code"], finding["path"]
            if not rule.startswith("GL1"):
                judged[rule]["engine"] += 1
            labelled = any(hits(finding, b.path, b.rule, b.lines, b.cell) for b in tree_bugs)
            said = verdicts.get((key, path, rule, finding["line"]))
            in_triage = any(
                tp in (".", "")
                or path == os.path.normpath(tp)
                or path.startswith(os.path.normpath(tp) + os.sep)
                for tp in tree.triage_paths
            )
            if path in clean:
                verdict = False
                clean_flagged[rule] += 1
                flagged_files.add((key, path))
            elif labelled:
                verdict = True
            elif said:
                verdict = said[0].true
            else:
                verdict = None
            if verdict is None:
                judged[rule]["unjudged"] += 1
                unjudged.append((tree, finding))
            else:
                judged[rule]["tp" if verdict else "fp"] += 1
                if not verdict:
                    false_positives.append((tree, finding, said[0].note if said else "clean file"))
            if in_triage:
                triage_rows.append((tree, finding, verdict, said[0].note if said else ""))
                judged[rule]["triage"] += 1

    rules = sorted(set(recall) | {r for r in judged if r.startswith("GL1")})
    print(
        f"corpus: {len(manifests)} manifests, {len(corpus.trees)} trees, "
        f"{len(corpus.bugs)} labelled bugs, "
        f"{clean_files} clean files, {len(corpus.verdicts)} verdicts; gradlint: {args.gradlint}"
        f"{' (preview rules on for recall)' if preview else ''}"
    )
    print()
    print(
        "rule    bugs  recall(file)  recall(line)  clean-flagged"
        "  findings   tp   fp  unjudged  precision"
    )
    totals: Counter[str] = Counter()
    for rule in rules:
        r, j = recall[rule], judged[rule]
        findings = j["tp"] + j["fp"] + j["unjudged"]
        print(
            f"{rule}  {r['bugs']:5d}  {percent(r['file'], r['bugs']):>12}"
            f"  {percent(r['line'], r['bugs']):>12}"
            f"  {clean_flagged[rule]:13d}  {findings:8d}  {j['tp']:3d}  {j['fp']:3d}"
            f"  {j['unjudged']:8d}"
            f"  {percent(j['tp'], j['tp'] + j['fp']):>9}"
        )
        totals.update(r)
        totals.update({k: j[k] for k in ("tp", "fp", "unjudged")})
    print(
        f"all    {totals['bugs']:5d}  {percent(totals['file'], totals['bugs']):>12}"
        f"  {percent(totals['line'], totals['bugs']):>12}  {len(flagged_files):5d} files  "
        f"{totals['tp'] + totals['fp'] + totals['unjudged']:8d}"
        f"  {totals['tp']:3d}  {totals['fp']:3d}"
        f"  {totals['unjudged']:8d}  {percent(totals['tp'], totals['tp'] + totals['fp']):>9}"
    )
    print(
        f"\nclean files flagged by a default rule: {len(flagged_files)} of {clean_files}"
        f" ({percent(len(flagged_files), clean_files).strip()})"
    )
    engine = {r: j["engine"] for r, j in judged.items() if j["engine"]}
    if engine:
        print(f"engine findings (GL0xx): {engine}")

    def where(tree: Tree, finding: dict[str, Any]) -> str:
        cell = f":cell {finding['cell']}" if finding.get("cell") else ""
        return f"{tree.key} {finding['path']}{cell}:{finding['line']} {finding['code']}"

    if "triage" in args.show:
        print("\ntriage findings (default rules):")
        for tree, finding, verdict, note in triage_rows:
            mark = {True: "tp", False: "fp", None: "??"}[verdict]
            print(
                f"  {mark} [{tree.world}] {where(tree, finding)}  {note or finding['message'][:90]}"
            )
    if "missed" in args.show:
        print("\nbugs not found at a labelled line (F: found elsewhere in the file):")
        for bug, in_file in missed:
            print(
                f"  {'F' if in_file else '-'} {bug.rule} {bug.tree}"
                f" {bug.path}:{','.join(map(str, bug.lines))}  {bug.note[:90]}"
            )
    if "fp" in args.show:
        print("\nfalse positives:")
        for tree, finding, note in false_positives:
            print(f"  {where(tree, finding)}  {note[:100]}")
    if "unjudged" in args.show:
        print("\nunjudged findings (add a [[verdict]]):")
        for tree, finding in unjudged:
            print(f"  {where(tree, finding)}  {finding['message'][:100]}")
    if missing or corpus.errors:
        print("\nmissing (left out of the numbers):")
        for line in corpus.errors + missing:
            print(f"  {line}")
    if args.json:
        numbers = {
            rule: {
                **recall[rule],
                **{k: judged[rule][k] for k in ("tp", "fp", "unjudged")},
                "clean_flagged": clean_flagged[rule],
            }
            for rule in rules
        }
        args.json.write_text(json.dumps(numbers, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
