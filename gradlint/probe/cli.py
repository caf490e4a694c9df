"""click commands `probe` and `gradcheck`; the main CLI adds them with `add_command`."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

import click
from click.core import ParameterSource

from gradlint.findings import Finding, Severity
from gradlint.probe.runner import INSTALL_HINT, ProbeError, run_in_child, torch_available
from gradlint.probe.spec import (
    DEVICES,
    INPUT_DTYPES,
    LOSSES,
    MODEL_DTYPES,
    OPTIMIZERS,
    ProbeSpec,
    SpecError,
    Thresholds,
)

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2
# CLI parameter name -> config key; explicit CLI values win over [tool.gradlint.probe].
OPTION_KEYS = {
    "init_args": "init-args",
    "input_shape": "input-shape",
    "input_dtype": "input-dtype",
    "input_range": "input-range",
    "input_fn": "input-fn",
    "loss": "loss",
    "loss_fn": "loss-fn",
    "output": "output",
    "steps": "steps",
    "optimizer": "optimizer",
    "lr": "lr",
    "seed": "seed",
    "device": "device",
    "dtype": "dtype",
    "timeout": "timeout",
    "memory_limit": "memory-limit",
}


def _input_options(command: Any) -> Any:
    for option in reversed(
        [
            click.option(
                "--input-shape",
                multiple=True,
                metavar="N,D,...",
                help="Shape of one generated input; repeat for multi-input models.",
            ),
            click.option(
                "--input-dtype",
                multiple=True,
                type=click.Choice(INPUT_DTYPES),
                help="dtype of the inputs (float: N(0,1); long: ids in --input-range).",
            ),
            click.option(
                "--input-range",
                multiple=True,
                metavar="[INPUT=]LOW,HIGH",
                help="Value range (high exclusive), e.g. 0,30000 for token ids, or 1=0,30000 "
                "for input 1 only. Integer inputs without one use the model's vocabulary.",
            ),
            click.option(
                "--init-args",
                default="{}",
                metavar="JSON",
                help="Constructor keyword arguments, e.g. '{\"hidden\": 128}'.",
            ),
            click.option("--seed", type=int, default=0, show_default=True),
            click.option(
                "--timeout",
                type=float,
                default=120.0,
                show_default=True,
                help="Seconds before the child process is killed.",
            ),
            click.option(
                "--memory-limit",
                type=int,
                default=None,
                metavar="MIB",
                help="Address-space cap for the child (default: physical RAM; 0: none).",
            ),
        ]
    ):
        command = option(command)
    return command


@click.command("probe")
@click.argument("targets", nargs=-1, metavar="[TARGET]...")
@_input_options
@click.option(
    "--input-fn",
    metavar="FILE.py:FUNC",
    help="Zero-argument function returning example inputs (tensor, tuple or dict).",
)
@click.option("--loss", type=click.Choice(LOSSES), default="projection", show_default=True)
@click.option(
    "--loss-fn",
    metavar="FILE.py:FUNC",
    help="Your loss: FUNC(output) returns a scalar tensor (replaces --loss).",
)
@click.option(
    "--output",
    metavar="KEY|INDEX",
    help="Which element of a tuple/dict output enters the loss (e.g. logits, 0); "
    "default: logits if present, else every floating-point tensor.",
)
@click.option(
    "--steps",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Forward+backward passes, with an optimizer step between them.",
)
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default="sgd", show_default=True)
@click.option("--lr", type=click.FloatRange(min=0), default=0.01, show_default=True)
@click.option("--device", type=click.Choice(DEVICES), default="cpu", show_default=True)
@click.option("--dtype", type=click.Choice(MODEL_DTYPES), default="float32", show_default=True)
@click.option(
    "--threshold",
    "thresholds",
    multiple=True,
    metavar="NAME=VALUE",
    help=f"Override a threshold ({', '.join(Thresholds.names())}).",
)
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text")
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE.png",
    help="Write the gradient-flow chart (needs matplotlib).",
)
@click.option("--no-static", is_flag=True, help="Skip the cross-check with static rules.")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="pyproject.toml to read [tool.gradlint.probe] from.",
)
@click.pass_context
def probe_command(
    ctx: click.Context,
    /,
    targets: tuple[str, ...],
    config_file: Path | None,
    thresholds: tuple[str, ...],
    output_format: str,
    plot: Path | None,
    no_static: bool,
    **options: Any,
) -> None:
    """Run TARGET (file.py:Class or package.module:factory) and measure its gradient flow.

    Imports and executes the target's code in a child process. Without TARGET, probes every
    [[tool.gradlint.probe.targets]] entry of the project configuration. Exit 0: clean;
    1: a runtime finding, or a confirmed static one, at warning or above; 2: the probe
    could not run.
    """
    if not torch_available():
        _fail(INSTALL_HINT)
    from gradlint.config import ConfigError

    try:
        specs = _specs(ctx, targets, config_file, thresholds, options)
    except (SpecError, ConfigError) as exc:
        _fail(str(exc))
    exit_code, outputs = EXIT_CLEAN, []
    for i, spec in enumerate(specs):
        chart = plot
        if plot is not None and len(specs) > 1:  # one chart per target: flow-1.png, ...
            chart = plot.with_name(f"{plot.stem}-{i + 1}{plot.suffix}")
        try:
            text, data, findings = _probe_one(spec, chart, no_static, output_format)
        except ProbeError as exc:
            click.echo(f"gradlint probe: error: {exc}", err=True)
            outputs.append({"target": spec.target, "error": str(exc)})
            exit_code = EXIT_ERROR
            continue
        if output_format == "json":
            outputs.append(data)
        else:
            click.echo(text, nl=False)
        if exit_code != EXIT_ERROR and any(
            f.severity.rank >= Severity.WARNING.rank for f in findings
        ):
            exit_code = EXIT_FINDINGS
    if output_format == "json":
        from gradlint.probe.render import dumps

        click.echo(dumps(outputs[0] if len(specs) == 1 and outputs else outputs))
    ctx.exit(exit_code)


@click.command("gradcheck")
@click.argument("target", metavar="TARGET")
@_input_options
@click.option("--atol", type=click.FloatRange(min=0), help="Absolute tolerance [1e-7].")
@click.option("--rtol", type=click.FloatRange(min=0), help="Relative tolerance [1e-5].")
@click.option("--gradgrad", is_flag=True, help="Also check second derivatives (gradgradcheck).")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text")
@click.pass_context
def gradcheck_command(
    ctx: click.Context,
    /,
    target: str,
    output_format: str,
    atol: float | None,
    rtol: float | None,
    gradgrad: bool,
    **options: Any,
) -> None:
    """Check TARGET's backward (a torch.autograd.Function subclass or an nn.Module) against
    central differences in double precision. Exit 0: pass; 1: fail; 2: could not run
    (inputs outside the function's domain, arguments that are not tensors)."""
    if not torch_available():
        _fail(INSTALL_HINT, "gradcheck")
    from gradlint.config import ConfigError
    from gradlint.probe.settings import make_spec

    if not options["input_shape"]:
        _fail("gradcheck needs at least one --input-shape", "gradcheck")
    values = _cli_values(ctx, options)
    try:
        spec = make_spec({**values, "target": target}, "command line", Thresholds(), os.getcwd())
        spec = replace(spec, atol=atol, rtol=rtol, gradgrad=gradgrad)
        result = run_in_child("gradcheck", spec)
    except (ConfigError, ProbeError) as exc:
        _fail(str(exc), "gradcheck")
    if output_format == "json":
        click.echo(json.dumps(result, indent=2))
    elif result.get("status") == "could not run":
        _fail(f"{target}: could not run: {result['error']}", "gradcheck")
    else:
        click.echo(_gradcheck_text(result))
    if result.get("status") == "could not run":
        ctx.exit(EXIT_ERROR)
    ctx.exit(EXIT_CLEAN if result["passed"] else EXIT_FINDINGS)


def _probe_one(
    spec: ProbeSpec, plot: Path | None, no_static: bool, output_format: str
) -> tuple[str, dict[str, Any], list[Finding]]:
    from gradlint.probe.analysis import analyze_with_evidence
    from gradlint.probe.crosscheck import CrossCheck, cross_check
    from gradlint.probe.render import render_json, render_text
    from gradlint.probe.stats import ProbeReport

    report = ProbeReport.from_dict(run_in_child("probe", spec))
    with_evidence = analyze_with_evidence(report, spec.thresholds)
    findings = [f for f, _ in with_evidence]
    check = (
        CrossCheck(False, "skipped (--no-static)", unpredicted=tuple(findings))
        if no_static
        else cross_check(report, with_evidence, spec.loss, spec.steps, _lint_config(spec))
    )
    if plot is not None:
        from gradlint.probe.plot import PlotError, plot_gradient_flow

        try:
            plot_gradient_flow(report, spec.thresholds, plot)
        except PlotError as exc:
            raise ProbeError(str(exc)) from None
    # Static findings the probe confirmed count toward the exit status like runtime ones.
    failing = findings + [v.static for v in check.verdicts if v.verdict == "confirmed"]
    if output_format == "json":
        return "", render_json(spec, report, findings, check), failing
    return render_text(spec, report, findings, check), {}, failing


def _lint_config(spec: ProbeSpec) -> Any:
    """The project's lint settings (select/ignore apply to the cross-check), else defaults."""
    try:
        from gradlint.config import ConfigError, find_config_file, load_config
    except ImportError:
        return None
    try:
        return load_config(find_config_file(Path(spec.cwd or os.getcwd())))
    except ConfigError:
        return None  # the lint command reports a broken config; the probe uses defaults


def _specs(
    ctx: click.Context,
    targets: tuple[str, ...],
    config_file: Path | None,
    threshold_args: tuple[str, ...],
    options: dict[str, Any],
) -> list[ProbeSpec]:
    from gradlint.config import find_config_file
    from gradlint.probe.settings import make_spec, parse_probe_table, read_probe_table

    cwd = os.getcwd()
    path = config_file or find_config_file(Path(cwd))
    defaults: dict[str, Any] = {}
    thresholds, tables = Thresholds(), list[dict[str, Any]]()
    if path is not None:
        defaults, thresholds, tables = parse_probe_table(read_probe_table(path), path)
        cwd = str(path.parent.resolve()) if not targets else cwd
    thresholds = thresholds.with_values(dict(_threshold(t) for t in threshold_args))
    cli = _cli_values(ctx, options)
    if targets:
        by_name = {t["target"]: t for t in tables}
        return [
            make_spec(
                {**defaults, **by_name.get(t, {}), **cli, "target": t},
                "command line",
                thresholds,
                cwd,
            )
            for t in targets
        ]
    if not tables:
        raise SpecError(
            "no TARGET given and no [[tool.gradlint.probe.targets]] in "
            f"{path or 'any pyproject.toml'}"
        )
    return [
        make_spec(
            {**defaults, **table, **cli}, f"{path}: target {table['target']!r}", thresholds, cwd
        )
        for table in tables
    ]


def _cli_values(ctx: click.Context, options: dict[str, Any]) -> dict[str, Any]:
    """Options the user actually typed, as config keys (defaults left to the config)."""
    values = {}
    for name, key in OPTION_KEYS.items():
        if name in options and ctx.get_parameter_source(name) != ParameterSource.DEFAULT:
            values[key] = options[name]
    return values


def _threshold(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    try:
        return name.strip(), float(value)
    except ValueError:
        raise SpecError(f"--threshold must look like NAME=VALUE, got {text!r}") from None


def _gradcheck_text(result: dict[str, Any]) -> str:
    lines = [
        f"gradcheck {result['name']} ({result['kind']}, float64, central differences, "
        f"atol {result['atol']:g}, rtol {result['rtol']:g})"
    ]
    for item in result["inputs"]:
        rel = item["relative_error"]
        lines.append(
            f"  input {item['index']} {tuple(item['shape'])}: worst relative error "
            f"{'n/a' if rel is None else f'{rel:.2e}'} (max abs "
            f"{item['max_abs_error']:.2e}) {'ok' if item['ok'] else 'MISMATCH'}"
        )
    if result.get("error"):
        lines.append(f"  error: {result['error']}")
    if "gradgrad" in result:
        verdict = "ok" if result["gradgrad"] else "MISMATCH"
        lines.append(f"  second derivatives (gradgradcheck): {verdict}")
        if result.get("gradgrad_error"):
            lines.append(f"  error: {result['gradgrad_error']}")
    lines.append(
        "PASS: analytic and numerical gradients agree"
        if result["passed"]
        else "FAIL: the backward disagrees with finite differences"
    )
    return "\n".join(lines)


def _fail(message: str, command: str = "probe") -> NoReturn:
    click.echo(f"gradlint {command}: error: {message}", err=True)
    raise click.exceptions.Exit(EXIT_ERROR)
