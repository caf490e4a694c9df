"""Command line: turns flags into a Config, calls the engine, renders, picks the exit code."""

from __future__ import annotations

import importlib
import json
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import click

from gradlint import __version__
from gradlint.baseline import BaselineError, apply_baseline, read_baseline, write_baseline
from gradlint.cache import CACHE_DIR_NAME, clean, code_stamp
from gradlint.config import Config, ConfigError, find_config_file, load_config
from gradlint.discovery import DiscoveryError, discover, read_source
from gradlint.findings import FileResult, Severity
from gradlint.fixes import FixError, apply_fixes, check_parses, unified_diff, write_atomically
from gradlint.interrupts import handle_interrupts, stop_behind
from gradlint.notebook import NOT_PYTHON, is_notebook, to_cells
from gradlint.output import RENDERERS, sarif
from gradlint.output.color import colorize, use_color
from gradlint.output.progress import Progress
from gradlint.registry import (
    ENGINE_CODES,
    all_rules,
    catalogue_in,
    find_rule,
    rule_state,
    selected_rules,
    severity_text,
    validate_selectors,
)
from gradlint.runner import RunOptions, lint_tree, project_phase

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it


class _DefaultGroup(click.Group):
    """`gradlint src/` means `gradlint check src/`; subcommands win over folder names."""

    # commands imported only when they run (the probe's imports are not free)
    LAZY = {
        "probe": ("gradlint.probe.cli", "probe_command"),
        "gradcheck": ("gradlint.probe.cli", "gradcheck_command"),
        "watch-report": ("gradlint.watcher.cli", "watch_report_command"),
    }

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        known = (*self.commands, *self.LAZY, "--help", "-h", "--version")
        if not args or args[0] not in known:
            args = ["check", *args]
        return super().parse_args(ctx, args)

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage(ctx.command_path, "[OPTIONS] [PATHS]...")
        formatter.write_usage(ctx.command_path, "COMMAND [ARGS]...", prefix="   or: ")

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The default command's options first: they are what `gradlint [PATHS]` accepts."""
        click.Command.format_options(self, ctx, formatter)  # --version, --help
        check = self.get_command(ctx, "check")
        if check is not None:
            rows = [
                record
                for param in check.get_params(ctx)
                if isinstance(param, click.Option)
                and "--help" not in param.opts
                and (record := param.get_help_record(ctx)) is not None
            ]
            with formatter.section("Options for linting (gradlint [PATHS] = gradlint check)"):
                formatter.write_dl(rows)
        self.format_commands(ctx, formatter)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.LAZY})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.LAZY and name not in self.commands:
            module, attribute = self.LAZY[name]
            try:
                self.add_command(getattr(importlib.import_module(module), attribute), name)
            except ImportError:
                return None
        return super().get_command(ctx, name)


@click.group(cls=_DefaultGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(
    __version__, "--version", prog_name="gradlint", message="%(prog)s %(version)s"
)
def cli() -> None:
    """Find gradient-flow bugs in PyTorch code.

    `gradlint [PATHS]...` lints files and folders (the same as `gradlint check`)
    with the options below. To lint a folder named like a command, write
    `gradlint check rules` or `gradlint ./rules`.
    """


def _split(values: Sequence[str]) -> tuple[str, ...] | None:
    if not values:
        return None
    return tuple(part.strip() for value in values for part in value.split(",") if part.strip())


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--select",
    multiple=True,
    metavar="CODES",
    help="Rules to enable: codes, prefixes (GL1) or names; comma-separated.",
)
@click.option("--ignore", multiple=True, metavar="CODES", help="Rules to disable, like --select.")
@click.option(
    "--extend-select",
    multiple=True,
    metavar="CODES",
    help="Rules to enable on top of the selection.",
)
@click.option(
    "--preview/--no-preview",
    default=None,
    help="Also run the preview rules (not yet precise enough to be on by default).",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(sorted(RENDERERS)),
    default="concise",
    show_default=True,
    help="Output format.",
)
@click.option(
    "-o",
    "--output-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the report to this file instead of standard output.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Read settings from this pyproject.toml instead of searching for one.",
)
@click.option("--exit-zero", is_flag=True, help="Exit 0 even when there are findings.")
@click.option(
    "--fail-on",
    type=click.Choice([s.value for s in Severity]),
    default="info",
    show_default=True,
    help="Lowest severity that makes the exit code 1.",
)
@click.option(
    "--statistics",
    is_flag=True,
    help="Show how many findings each rule produced instead of the findings "
    "(a table, or JSON with --format json).",
)
@click.option("-q", "--quiet", is_flag=True, help="Print findings only, no summary.")
@click.option(
    "--stdin-filename",
    metavar="NAME",
    help="Lint source read from standard input, reported as NAME.",
)
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=0),
    default=0,
    help="Worker processes (default: one per available core).",
)
@click.option("--no-cache", is_flag=True, help="Do not read or write the cache.")
@click.option(
    "--cache-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Cache folder (default: .gradlint_cache beside the configuration).",
)
@click.option(
    "--fix",
    is_flag=True,
    help="Apply the fixes rules offer, then report what is left. "
    "Fixes change training behaviour: review them.",
)
@click.option(
    "--diff", is_flag=True, help="Print the fixes as a unified diff instead of writing them."
)
@click.option(
    "--baseline",
    "baseline_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Hide the findings recorded in this baseline file; report only new ones.",
)
@click.option(
    "--write-baseline",
    "write_baseline_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Record every current finding in this baseline file and exit 0.",
)
@click.option(
    "--color",
    type=click.Choice(["auto", "always", "never"]),
    default="auto",
    show_default=True,
    help="Colour the concise and full output (auto: on a terminal, unless NO_COLOR is set).",
)
def check(
    paths: tuple[Path, ...],
    select: tuple[str, ...],
    ignore: tuple[str, ...],
    extend_select: tuple[str, ...],
    preview: bool | None,
    output_format: str,
    output_file: Path | None,
    config_path: Path | None,
    exit_zero: bool,
    fail_on: str,
    statistics: bool,
    quiet: bool,
    stdin_filename: str | None,
    jobs: int,
    no_cache: bool,
    cache_dir: Path | None,
    fix: bool,
    diff: bool,
    baseline_path: Path | None,
    write_baseline_path: Path | None,
    color: str,
) -> None:
    """Lint PyTorch source files and folders (default: the current folder)."""
    from_stdin = stdin_filename is not None or paths == (Path("-"),)
    started = time.perf_counter()
    hidden = None
    with ExitStack() as scope:
        try:
            config = _resolve_config(config_path, paths, stdin_filename)
            folder = None if no_cache else (cache_dir or config.root / CACHE_DIR_NAME)
            # with the cache on, the rules' declarations come from a catalogue kept beside it, so a
            # run that finds every file cached never imports the rules
            scope.enter_context(catalogue_in(None if from_stdin else folder, code_stamp()))
            flags = {"--select": select, "--ignore": ignore, "--extend-select": extend_select}
            for flag, values in flags.items():  # checked apart so the config file is not blamed
                validate_selectors(_split(values) or (), f"command line {flag}")
            config = config.with_cli(
                preview=preview,
                select=_split(select),
                ignore=(*config.ignore, *(_split(ignore) or ())) if ignore else None,
                extend_select=(*config.extend_select, *(_split(extend_select) or ()))
                if extend_select
                else None,
            )
            rules = selected_rules(config)
            if from_stdin:
                name = stdin_filename or "-"
                source = sys.stdin.buffer.read()
                if is_notebook(name):
                    from gradlint.notebook import lint_notebook

                    results = [to_cells(lint_notebook(source, name, config, rules), source)]
                else:
                    from gradlint.engine import lint_source

                    # an editor piping its buffer: the model files it imports are on disk
                    result = lint_source(source, name, config, rules)
                    results = project_phase([result], config, rules)
                if fix or diff:
                    _fail("--fix and --diff need files, not standard input")
            else:
                notes: list[str] = []
                files = discover(list(paths) or [Path(".")], config, notes)
                for note in notes:
                    click.echo(f"gradlint: warning: {note}", err=True)
                named = frozenset(p.as_posix() for p in paths if not p.is_dir())
                options = RunOptions(jobs=jobs, cache_dir=folder, named=named)
                with Progress(len(files), enabled=not quiet):
                    results = lint_tree(files, config, rules, options)
                for result in results:
                    if result.skipped and result.skipped.startswith(NOT_PYTHON):
                        click.echo(
                            f"gradlint: note: {result.path}: skipped, {result.skipped}", err=True
                        )
                if diff:
                    patch = _fix_diffs(results)  # empty when no fix applies
                    _write(patch, output_file)
                    sys.exit(EXIT_FINDINGS if patch and not exit_zero else EXIT_CLEAN)
                if fix:
                    fixed, results = _apply_fixes(results, files, config, rules, options)
                    if fixed and not quiet:
                        click.echo(f"Fixed {fixed} finding{'s' * (fixed != 1)}.", err=True)
            if write_baseline_path is not None:
                recorded = write_baseline(write_baseline_path, results, config.root)
                if not quiet:
                    noun = "finding" if recorded == 1 else "findings"
                    click.echo(f"Recorded {recorded} {noun} in {write_baseline_path}.", err=True)
                sys.exit(EXIT_CLEAN)
            if baseline_path is not None:
                hidden = apply_baseline(results, read_baseline(baseline_path), config.root)
                results = hidden.results
        except (ConfigError, DiscoveryError, FixError, BaselineError) as exc:
            _fail(str(exc))
    if output_format == "sarif":  # code scanning needs paths relative to the repository
        report = sarif.render(results, rules, root=repository_root(Path.cwd()))
    else:
        report = RENDERERS[output_format](results, rules)
    human = output_format in ("concise", "full")
    terminal = output_file is None and _is_terminal()
    if statistics and human:
        report = _statistics(results)
    elif statistics and output_format == "json":
        report = _statistics_json(results, rules)
    colored = human and not statistics and use_color(color, terminal)
    if colored:
        report = colorize(report, results)
    if human and not quiet:
        report += _summary(results, time.perf_counter() - started if terminal else None)
        if hidden is not None:
            report += _baseline_note(hidden.matched, hidden.stale, baseline_path)
    _write(report, output_file, colored)
    threshold = Severity(fail_on).rank
    failing = any(f.severity.rank >= threshold for r in results for f in r.findings)
    sys.exit(EXIT_FINDINGS if failing and not exit_zero else EXIT_CLEAN)


def _fixed_sources(results: Sequence[FileResult]) -> Iterator[tuple[Path, str, int, str]]:
    """(path, new text, fixes applied, diff) for every file with applicable fixes."""
    for result in results:
        fixes = [f.fix for f in result.findings if f.fix is not None]
        if not fixes:
            continue
        path = Path(result.path)
        try:
            old = read_source(path).decode("utf-8")
        except (OSError, UnicodeDecodeError):
            continue  # fixes are applied to UTF-8 files only
        if is_notebook(result.path):
            from gradlint.notebook_fixes import fix_notebook

            fixed = fix_notebook(old, result.path, fixes)
            if fixed is not None:
                yield path, fixed.text, fixed.applied, fixed.diff
            continue
        new, applied = apply_fixes(old, fixes)
        if applied and new != old:
            check_parses(new, result.path)
            yield path, new, applied, unified_diff(old, new, path.as_posix())


def _fix_diffs(results: Sequence[FileResult]) -> str:
    return "".join(patch for _, _, _, patch in _fixed_sources(results))


def _apply_fixes(
    results: list[FileResult],
    files: list[Path],
    config: Config,
    rules: Sequence[Any],
    options: RunOptions,
) -> tuple[int, list[FileResult]]:
    total = 0
    for path, new, applied, _ in list(_fixed_sources(results)):
        write_atomically(path, new)
        total += applied
    if total:
        results = lint_tree(files, config, rules, options)
    return total, results


def _resolve_config(explicit: Path | None, paths: Sequence[Path], stdin_name: str | None) -> Config:
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError(f"{explicit}: configuration file not found")
        return load_config(explicit)
    start = (
        Path(stdin_name).parent
        if stdin_name
        else (paths[0] if paths and paths[0] != Path("-") else Path("."))
    )
    if not start.exists():
        start = Path(".")
    return load_config(find_config_file(start))


def repository_root(start: Path) -> Path:
    """The folder holding `.git` at or above `start` (resolved), else `start` itself."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return start


def _statistics(results: Sequence[FileResult]) -> str:
    counts = Counter((f.code, f.name) for r in results for f in r.findings)
    rows = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return "".join(f"{count:>5}  {code}  {name}\n" for (code, name), count in rows)


def _statistics_json(results: Sequence[FileResult], rules: Sequence[Any]) -> str:
    """The counts as JSON: `[{"code", "name", "count", "fixable"}]`, most frequent first."""
    counts = Counter((f.code, f.name) for r in results for f in r.findings)
    fixable = Counter(f.code for r in results for f in r.findings if f.fix is not None)
    rows = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    document = [
        {"code": code, "name": name, "count": count, "fixable": fixable[code] > 0}
        for (code, name), count in rows
    ]
    return json.dumps(document, indent=2) + "\n"


def _is_terminal() -> bool:
    return sys.stdout.isatty()


def _summary(results: Sequence[FileResult], elapsed: float | None = None) -> str:
    """One line; on a terminal (`elapsed` given) it adds the findings per rule and the time."""
    total = sum(len(r.findings) for r in results)
    took = f" in {elapsed:.2f}s" if elapsed is not None else ""
    if total == 0:
        return (
            f"All checks passed! ({len(results)} file{'s' * (len(results) != 1)} checked{took})\n"
        )
    files = sum(1 for r in results if r.findings)
    noun = "finding" if total == 1 else "findings"
    line = f"Found {total} {noun} in {files} file{'s' * (files != 1)} ({len(results)} checked"
    if elapsed is None:
        return line + ").\n"
    counts = Counter(f.code for r in results for f in r.findings)
    per_rule = ", ".join(f"{code} x{n}" for code, n in sorted(counts.items()))
    return f"{line}{took}): {per_rule}.\n"


def _baseline_note(matched: int, stale: int, path: Path | None) -> str:
    note = f"{matched} known finding{'s' * (matched != 1)} hidden by the baseline {path}"
    if stale:
        note += f"; {stale} baseline entr{'ies' if stale != 1 else 'y'} no longer match (fixed?)"
    return note + ".\n"


def _write(report: str, target: Path | None, colored: bool = False) -> None:
    if target is None:
        click.echo(report, nl=False, color=True if colored else None)
        return
    try:  # write beside the target and rename, so a failed run never leaves half a report
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(target, report)
    except OSError as exc:
        _fail(f"{target}: cannot write report: {exc.strerror or exc}")


def _fail(message: str) -> None:
    click.echo(f"gradlint: error: {message}", err=True)
    sys.exit(EXIT_ERROR)


@cli.command("clean")
@click.option(
    "--cache-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="The cache folder to delete.",
)
def clean_command(cache_dir: Path | None) -> None:
    """Delete the cache folder."""
    try:
        config = load_config(find_config_file(Path(".")))
    except ConfigError as exc:
        _fail(str(exc))
        return
    folder = cache_dir or config.root / CACHE_DIR_NAME
    if clean(folder):
        click.echo(f"Removed {folder}")
    else:
        click.echo(f"No cache at {folder}")


@cli.command("rules")
@click.option(
    "--all",
    "show_all",
    is_flag=True,
    help="Include rules that are off by default (always shown; kept for scripts).",
)
def rules_command(show_all: bool) -> None:
    """List every rule: code, name, severity, and what it finds."""
    rules = all_rules()
    width = max(len(rule.name()) for rule in rules)
    for rule in rules:
        state = rule_state(rule)
        click.echo(
            f"{rule.CODE}  {rule.name():<{width}}  {_short_severity(rule):<8}  "
            f"{rule.summary()}{state}"
        )


@cli.command()
@click.argument("code")
def explain(code: str) -> None:
    """Print the full documentation of one rule (by code or name), GL000 and GL001 included."""
    engine = _engine_code(code)
    if engine is not None:
        click.echo(engine_text(engine))
        return
    rule = find_rule(code)
    if rule is None:
        _fail(f"unknown rule '{code}'; `gradlint rules` lists them")
        return
    click.echo(explain_text(rule))


def _engine_code(code_or_name: str) -> str | None:
    wanted = code_or_name.strip()
    for code, name in ENGINE_CODES.items():
        if wanted.upper() == code or wanted.lower() == name:
            return code
    return None


def engine_text(code: str) -> str:
    """The page of an engine code, shaped like a rule's."""
    from gradlint.engine_codes import DOCS

    header = [f"# {code} {ENGINE_CODES[code]}", "", "Severity: error", ""]
    return "\n".join(header) + "\n" + DOCS[code].strip() + "\n"


def _short_severity(rule: Any) -> str:
    """`warning`, or `warning+` when some findings are errors (`warning-`: some are lower)."""
    other = rule.OTHER_SEVERITY
    if other is None:
        return str(rule.SEVERITY.value)
    return str(rule.SEVERITY.value) + ("+" if other.rank > rule.SEVERITY.rank else "-")


def explain_text(rule: Any) -> str:
    """The rule's page: header, docstring, example and fix (from its own test cases)."""
    parts = [
        f"# {rule.CODE} {rule.name()}",
        "",
        f"Severity: {severity_text(rule)}{rule_state(rule)}",
        "",
    ]
    parts.append(textwrap.dedent(rule.__doc__ or "").strip())
    if rule.INVALID:
        parts += ["", "## Example", "", "```python", rule.INVALID[0].source.rstrip(), "```"]
    if rule.VALID:
        parts += ["", "## Use instead", "", "```python", rule.VALID[0].source.rstrip(), "```"]
    if rule.OPTIONS:
        parts += ["", "## Options", "", f"Under `[tool.gradlint.rules.{rule.name()}]`:", ""]
        parts += [f"- `{key}` (default `{value!r}`)" for key, value in rule.OPTIONS.items()]
    if rule.NEEDS:
        words = ", ".join(f"`{word}`" for word in rule.NEEDS)
        parts += [
            "",
            "## Files it reads",
            "",
            f"Only files whose text contains one of {words} (case-sensitive): the rule cannot "
            "find anything elsewhere, so it is not run there.",
        ]
    return "\n".join(parts) + "\n"


@cli.command("lsp")
def lsp_command() -> None:
    """Run the language server over stdio (needs the `lsp` extra: pygls)."""
    try:
        from gradlint.lsp import MissingExtra, serve
    except ImportError as exc:  # pragma: no cover - gradlint.lsp imports pygls lazily
        _fail(str(exc))
        return
    try:
        serve()
    except MissingExtra as exc:
        _fail(str(exc))


def main() -> None:
    try:
        handle_interrupts()
        # not standalone: click would turn Ctrl-C into "Aborted!" and exit 1, the code that
        # means "findings"; the interrupt is handled here instead
        code = cli.main(prog_name="gradlint", standalone_mode=False)
    except SystemExit:
        raise
    except click.Abort as exc:
        if isinstance(exc.__cause__, KeyboardInterrupt):
            _interrupted()
        click.echo("Aborted!", err=True)  # end of input at a prompt
        sys.exit(EXIT_FINDINGS)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _interrupted()
    except Exception as exc:  # the process boundary: never show a traceback to the user
        if stop_behind(exc) is not None:
            _interrupted()
        click.echo(f"gradlint: internal error: {type(exc).__name__}: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    sys.exit(code if isinstance(code, int) else EXIT_CLEAN)


def _interrupted() -> None:
    click.echo("gradlint: interrupted", err=True)
    sys.exit(EXIT_INTERRUPTED)
