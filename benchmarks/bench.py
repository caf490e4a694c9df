"""Measure gradlint against the bare libcst parse and its peers on real PyTorch source.

Builds a corpus from pinned wheels on PyPI (downloaded once into a cache folder, never
committed), then times, in one run and on the same files:

- gradlint cold (no cache), warm (cache hit, nothing changed), one file changed;
- gradlint --jobs 1 against the default number of jobs;
- the floor: bare `libcst.parse_module` over the files gradlint parses, one process;
- TorchFix and Fixit with their default rules, when installed (skipped otherwise);
- scaling: the corpus copied 1x, 2x and 4x.

Usage:  python benchmarks/bench.py [--cache-dir DIR] [--skip-scaling] [--peers-venv DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

WHEELS = ("timm==1.0.31", "torchvision==0.24.0", "transformers==4.57.1")
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "gradlint-bench"


@dataclass
class Measure:
    label: str
    wall: float
    cpu: float
    rss_mb: float
    files: int

    @property
    def rate(self) -> float:
        return self.files / self.wall if self.wall else float("inf")


def build_corpus(cache: Path, wanted: tuple[str, ...]) -> Path:
    corpus = cache / ("corpus-" + "-".join(sorted(w.split("==")[0] for w in wanted)))
    if corpus.is_dir() and any(corpus.iterdir()):
        return corpus
    wheels = cache / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(wheels), *wanted],
        check=True,
    )
    names = {w.split("==")[0] for w in wanted}
    for wheel in sorted(wheels.glob("*.whl")):
        if wheel.name.split("-")[0] not in names:
            continue
        target = corpus / wheel.name.split("-")[0]
        with zipfile.ZipFile(wheel) as archive:
            for name in archive.namelist():
                if name.endswith(".py"):
                    archive.extract(name, target)
    return corpus


def count(corpus: Path) -> tuple[int, int]:
    files = list(corpus.rglob("*.py"))
    lines = sum(p.read_bytes().count(b"\n") for p in files)
    return len(files), lines


def run(label: str, command: list[str], files: int, cwd: Path | None = None) -> Measure:
    """Wall time, CPU time (children included) and peak RSS of one command."""
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    stderr = process.stderr.read().decode() if process.stderr else ""
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        print(f"  {label}: exit {code}: {stderr.strip()[:300]}", file=sys.stderr)
    return Measure(label, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, files)


def floor_command(corpus: Path, work: Path) -> tuple[list[str], int]:
    """Bare `libcst.parse_module` over exactly the files gradlint parses (its own discovery
    and prefilter decide which), one process; and how many files that is."""
    from gradlint.config import Config
    from gradlint.discovery import discover
    from gradlint.runner import passes_prefilter

    parsed = passes_prefilter(discover([corpus], Config(root=corpus)))
    listing = work / "parsed-files.txt"
    listing.write_text("\n".join(str(p) for p in parsed), encoding="utf-8")
    script = (
        "import sys, libcst\n"
        "for name in open(sys.argv[1], encoding='utf-8').read().splitlines():\n"
        "    data = open(name, 'rb').read()\n"
        "    try: libcst.parse_module(data)\n"
        "    except Exception: pass\n"
    )
    return [sys.executable, "-c", script, str(listing)], len(parsed)


def table(rows: list[Measure], floor: Measure | None) -> None:
    print(
        f"{'run':<34}{'files':>7}{'wall s':>9}{'cpu s':>9}{'files/s':>9}{'RSS MB':>9}{'x floor':>9}"
    )
    for row in rows:
        ratio = f"{row.wall / floor.wall:>9.2f}" if floor else f"{'':>9}"
        print(
            f"{row.label:<34}{row.files:>7}{row.wall:>9.2f}{row.cpu:>9.2f}{row.rate:>9.1f}{row.rss_mb:>9.0f}{ratio}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--skip-scaling", action="store_true")
    parser.add_argument("--peers-venv", type=Path, help="virtualenv holding torchfix / fixit")
    parser.add_argument(
        "--packages",
        default=",".join(w.split("==")[0] for w in WHEELS),
        help="comma-separated subset of the pinned wheels to use (default: all)",
    )
    args = parser.parse_args()

    wanted = tuple(w for w in WHEELS if w.split("==")[0] in args.packages.split(","))
    corpus = build_corpus(args.cache_dir, wanted)
    files, lines = count(corpus)
    print(f"corpus: {corpus} ({files} files, {lines} lines; {', '.join(wanted)})")
    gradlint = [sys.executable, "-m", "gradlint", "check", "--exit-zero", "-q"]
    work = Path(tempfile.mkdtemp(prefix="gradlint-bench-"))
    cache = work / "cache"
    rows: list[Measure] = []
    command, parsed = floor_command(corpus, work)
    print(f"gradlint parses {parsed} of them (the others hold no torch and import nothing local)")
    floor = run("floor: libcst.parse_module, 1 proc", command, files)
    rows.append(floor)
    rows.append(
        run(
            "gradlint cold --no-cache --jobs 1",
            [*gradlint, "--no-cache", "--jobs", "1", str(corpus)],
            files,
        )
    )
    rows.append(run("gradlint cold --no-cache", [*gradlint, "--no-cache", str(corpus)], files))
    shutil.rmtree(cache, ignore_errors=True)
    rows.append(
        run(
            "gradlint cold (fills cache)",
            [*gradlint, "--cache-dir", str(cache), str(corpus)],
            files,
        )
    )
    rows.append(
        run("gradlint warm (cache hit)", [*gradlint, "--cache-dir", str(cache), str(corpus)], files)
    )
    victim = next(p for p in sorted(corpus.rglob("*.py")) if b"torch" in p.read_bytes())
    original = victim.read_bytes()
    try:
        victim.write_bytes(original + b"\n# changed by the benchmark\n")
        rows.append(
            run(
                "gradlint one file changed",
                [*gradlint, "--cache-dir", str(cache), str(corpus)],
                files,
            )
        )
    finally:
        victim.write_bytes(original)
    for tool, command in peer_commands(args.peers_venv, corpus).items():
        rows.append(run(tool, command, files))
    table(rows, floor)
    by = {r.label: r for r in rows}
    cold1 = by["gradlint cold --no-cache --jobs 1"]
    cold = by["gradlint cold --no-cache"]
    print()
    print(f"cold 1 job / floor:        {cold1.wall / floor.wall:.2f}x (target <= 1.5)")
    print(f"jobs speed-up:             {cold1.wall / cold.wall:.2f}x (target >= 1.7 on 2 cores)")
    print(
        f"warm speed-up over cold:   {by['gradlint cold (fills cache)'].wall / by['gradlint warm (cache hit)'].wall:.1f}x (target >= 30)"
    )
    for peer in ("torchfix", "fixit"):
        if peer in by:
            print(f"{peer} / gradlint cold:     {by[peer].wall / cold.wall:.1f}x (target >= 5)")
    if not args.skip_scaling:
        scaling(corpus, work, gradlint)
    shutil.rmtree(work, ignore_errors=True)


def peer_commands(venv: Path | None, corpus: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    folders = [venv / "bin"] if venv else []
    folders.append(Path(sys.executable).parent)
    for tool, command in (("torchfix", ["torchfix"]), ("fixit", ["fixit", "lint"])):
        for folder in folders:
            exe = folder / command[0]
            if exe.exists():
                found[tool] = [str(exe), *command[1:], str(corpus)]
                break
        else:
            print(f"({tool} not installed: skipped)")
    return found


def scaling(corpus: Path, work: Path, gradlint: list[str]) -> None:
    print("\nscaling (cold, no cache, default jobs):")
    print(f"{'copies':>7}{'files':>8}{'wall s':>9}{'s / 1000 files':>16}{'RSS MB':>9}")
    for copies in (1, 2, 4):
        tree = work / f"x{copies}"
        for i in range(copies):
            if not (tree / str(i)).exists():
                shutil.copytree(corpus, tree / str(i))
        m = run(f"x{copies}", [*gradlint, "--no-cache", str(tree)], count(tree)[0])
        print(
            f"{copies:>7}{m.files:>8}{m.wall:>9.2f}{1000 * m.wall / m.files:>16.2f}{m.rss_mb:>9.0f}"
        )


if __name__ == "__main__":
    main()
