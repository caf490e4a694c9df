"""Compare static findings on the model's source with what the probe measured."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from gradlint.findings import Finding
from gradlint.probe.stats import Location, ProbeReport

# Static code -> the runtime codes whose presence confirms it.
CONFIRMED_BY: dict[str, tuple[str, ...]] = {
    "GL101": ("GL201", "GL204"),  # deep-saturating-stack
    "GL102": ("GL207",),  # constant-weight-init
    "GL103": ("GL201", "GL202"),  # missing-normalization
    "GL104": ("GL202",),  # rnn-without-clipping (growth across --steps)
    "GL108": ("GL202", "GL204", "GL205"),  # unscaled-weight-init
    "GL109": ("GL201", "GL202"),  # init-activation-mismatch
    "GL110": ("GL206",),  # gradient-blocked-in-forward
    "GL112": ("GL201", "GL202"),  # vanilla-rnn (through time)
    "GL114": ("GL203",),  # dead-relu-risk
}
_TRAINING_LOOP = "it is about the training loop, which the probe replaces with its own"
NOT_MEASURABLE: dict[str, str] = {
    "GL105": "the learning-rate schedule lives in the training loop, which the probe does not run",
    "GL111": _TRAINING_LOOP,
    "GL113": "an implicit softmax dim is a correctness question, not a gradient measurement",
    "GL115": _TRAINING_LOOP + " (probe with --steps 5 --lr <that rate> to watch its effect)",
}
STEP_HINTS = {"GL104": "probe with --steps 5 or more to watch gradient growth across updates"}
# Rules about how the model is trained (loss call, clipping, schedule) report at the training
# code, outside the model's class; those are kept from anywhere in the file.
FILE_LEVEL_CODES = frozenset({"GL104", "GL105", "GL106", "GL107", "GL111", "GL115"})


@dataclass(frozen=True)
class Verdict:
    static: Finding
    verdict: str  # "confirmed", "not observed" or "not measurable"
    evidence: str
    in_model: bool = True  # False: found elsewhere in the file (training code)


@dataclass(frozen=True)
class CrossCheck:
    available: bool
    reason: str = ""  # why static analysis is unavailable, or what the scope is
    scope: str = "class"  # "class": findings inside the model's definition; "file": all
    verdicts: tuple[Verdict, ...] = ()
    unpredicted: tuple[Finding, ...] = ()  # runtime findings no static finding predicted


def cross_check(
    report: ProbeReport,
    runtime: list[tuple[Finding, str]],
    loss: str,
    steps: int,
    config: Any = None,
) -> CrossCheck:
    """Lint the model's file statically and give each static finding on the model a verdict."""
    loc = report.location
    findings = tuple(f for f, _ in runtime)
    try:
        from gradlint.config import Config
        from gradlint.engine import lint_source
    except ImportError as exc:
        return CrossCheck(False, f"static analysis unavailable ({exc})", unpredicted=findings)
    if loc.file is None:
        return CrossCheck(
            False,
            "static analysis unavailable (the model has no Python source)",
            unpredicted=findings,
        )
    try:
        source = Path(loc.file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return CrossCheck(
            False,
            f"static analysis unavailable (cannot read {loc.path}: {exc})",
            unpredicted=findings,
        )
    # the model was measured, so its file is model code wherever it lives (tests/ included),
    # and a measurement may confirm what a preview rule says
    config = replace(config if config is not None else Config(), test_paths=(), preview=True)
    result = lint_source(source, loc.path, config)
    static, scope = _in_scope(list(result.findings), loc)
    by_code = {f.code: (f, evidence) for f, evidence in runtime}
    verdicts = tuple(
        replace(_verdict(f, by_code, report, loss, steps), in_model=inside)
        for f, inside in static
        if f.code.startswith("GL1")
    )
    predicted = {code for v in verdicts for code in CONFIRMED_BY.get(v.static.code, ())}
    unpredicted = tuple(f for f in findings if f.code not in predicted)
    return CrossCheck(True, "", scope, verdicts, unpredicted)


def _in_scope(findings: list[Finding], loc: Location) -> tuple[list[tuple[Finding, bool]], str]:
    """Findings inside the model's definition, plus training-code rules from the file."""
    if loc.end_line is None:  # the definition's extent is unknown: keep the whole file
        return [(f, False) for f in findings], "file"
    kept = []
    for f in findings:
        inside = loc.line <= f.line <= loc.end_line
        if inside or f.code in FILE_LEVEL_CODES:
            kept.append((f, inside))
    return kept, "class"


def _verdict(
    static: Finding,
    runtime: dict[str, tuple[Finding, str]],
    report: ProbeReport,
    loss: str,
    steps: int,
) -> Verdict:
    code = static.code
    if code == "GL106":
        return _softmax_verdict(static, report, loss)
    if code == "GL107":
        return _sigmoid_verdict(static, report, loss)
    if code in NOT_MEASURABLE:
        return Verdict(static, "not measurable", NOT_MEASURABLE[code])
    confirming = CONFIRMED_BY.get(code)
    if confirming is None:
        return Verdict(static, "not measurable", "no runtime measurement corresponds to this rule")
    hits = [runtime[c] for c in confirming if c in runtime]
    if hits:
        return Verdict(
            static, "confirmed", "; ".join(f"{h.code} {h.name}, {evidence}" for h, evidence in hits)
        )
    wanted = ", ".join(confirming)
    extra = f"; {STEP_HINTS[code]}" if code in STEP_HINTS and steps < 2 else ""
    return Verdict(static, "not observed", f"no {wanted} on this model and input{extra}")


def _softmax_verdict(static: Finding, report: ProbeReport, loss: str) -> Verdict:
    check = report.output
    if loss != "cross_entropy":
        return Verdict(static, "not measurable", "probe with --loss cross_entropy to measure it")
    if not check.get("probabilities"):
        return Verdict(
            static,
            "not observed",
            "the outputs are not probabilities (negative, or rows do not sum to 1)",
        )
    ratio = check.get("gradient_ratio")
    weaker = f"{ratio:.2g}x" if isinstance(ratio, float) else "an unknown fraction"
    return Verdict(
        static,
        "confirmed",
        "the outputs are probabilities (non-negative, rows sum "
        f"to 1) and cross entropy on them passes {weaker} of the gradient the "
        "logits would get without the softmax",
    )


def _sigmoid_verdict(static: Finding, report: ProbeReport, loss: str) -> Verdict:
    if loss != "bce_logits":
        return Verdict(static, "not measurable", "probe with --loss bce_logits to measure it")
    if not report.output.get("unit_interval"):
        return Verdict(static, "not observed", "the outputs are not confined to [0, 1]")
    return Verdict(
        static,
        "confirmed",
        "every output lies in [0, 1]: the model already "
        "applies a sigmoid, so the loss squashes it a second time",
    )
