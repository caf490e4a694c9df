"""Turn probe measurements into GL2xx findings pointing at the model's definition."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from gradlint.findings import Finding, Severity
from gradlint.probe.spec import Thresholds
from gradlint.probe.stats import ModuleStats, ProbeReport, StepReport


@dataclass(frozen=True)
class RuntimeCode:
    code: str
    name: str
    severity: Severity
    hint: str


CODES = {
    c.code: c
    for c in (
        RuntimeCode(
            "GL201",
            "vanishing-gradient",
            Severity.WARNING,
            "Use ReLU-family activations with Kaiming init, add normalization "
            "(BatchNorm/LayerNorm) or residual connections",
        ),
        RuntimeCode(
            "GL202",
            "exploding-gradient",
            Severity.WARNING,
            "Scale the init down (Kaiming/Xavier), add normalization, clip gradients "
            "with clip_grad_norm_, or lower the learning rate",
        ),
        RuntimeCode(
            "GL203",
            "dead-relu",
            Severity.WARNING,
            "Check for large negative biases or too-large updates; LeakyReLU, ELU or "
            "GELU keep a slope for negative inputs",
        ),
        RuntimeCode(
            "GL204",
            "saturated-activation",
            Severity.WARNING,
            "Normalize pre-activations, use a smaller init, or switch hidden "
            "activations to the ReLU family",
        ),
        RuntimeCode(
            "GL205",
            "non-finite",
            Severity.ERROR,
            "Look at the named module: log/division of zero, overflow in exp or half "
            "precision, or weights too large",
        ),
        RuntimeCode(
            "GL206",
            "disconnected-parameter",
            Severity.WARNING,
            "Remove .detach()/.data/torch.no_grad() from the training path, or freeze "
            "the parameter on purpose with requires_grad_(False)",
        ),
        RuntimeCode(
            "GL207",
            "symmetric-neurons",
            Severity.ERROR,
            "Initialize weights randomly (nn.init.kaiming_normal_, xavier_uniform_); "
            "constant init is fine only for biases and normalization layers",
        ),
    )
}


@dataclass(frozen=True)
class Ratios:
    """First-to-last layer ratios in one step; None where not measurable."""

    first: str | None = None
    last: str | None = None
    weight_grad: float | None = None  # RMS of weight gradients, first / last
    act_grad: float | None = None  # RMS of dLoss/dOutput, first / last
    forward: float | None = None  # forward std, last / first


def analyze(report: ProbeReport, thresholds: Thresholds) -> list[Finding]:
    """Every GL2xx finding the report supports, at most one per code."""
    return [finding for finding, _ in analyze_with_evidence(report, thresholds)]


def analyze_with_evidence(report: ProbeReport, thresholds: Thresholds) -> list[tuple[Finding, str]]:
    """Findings paired with a short evidence text (the key measured number)."""
    loc = report.location
    found: list[tuple[str, str, str]] = []  # (code, message, evidence)
    severities: dict[str, Severity] = {}  # where a finding's severity differs from its code's
    step0 = report.steps[0]
    nonfinite, bad_step = _nonfinite(report)
    if nonfinite:
        found.append(("GL205", nonfinite, nonfinite))
    symmetric = _symmetric(step0)
    if symmetric:
        found.append(("GL207", symmetric[0], symmetric[2]))
    if bad_step != 0:  # ratios mean nothing once NaN/Inf are in the first pass
        ratios = layer_ratios(reference_step(report))
        vanishing = _vanishing(ratios, thresholds)
        if vanishing:
            found.append(("GL201", vanishing, _ratio_evidence(ratios, low=True)))
        exploding = _exploding(report, ratios, thresholds)
        if exploding:
            found.append(("GL202", exploding, exploding.split("; ")[0].split(": ", 1)[-1]))
        disconnected = _disconnected(report, symmetric[1] if symmetric else set())
        if disconnected:
            text, severities["GL206"] = disconnected
            found.append(("GL206", text, text.split(": they")[0].split(" (a zero")[0]))
    dead = _activations(
        _diverse(step0, thresholds.min_dead_diversity),
        "dead_fraction",
        thresholds.dead_fraction,
        "{pct} of units output 0 for the whole batch",
        (report.batch_size or 0) >= thresholds.min_dead_batch,
    )
    if dead:
        found.append(("GL203", dead, dead.split("; ")[0]))
    saturated = _activations(
        step0,
        "saturated_fraction",
        thresholds.saturation_fraction,
        "{pct} of outputs sit in the flat tails",
        True,
    )
    if saturated:
        found.append(("GL204", saturated, saturated.split("; ")[0]))
    result = []
    for code, message, evidence in sorted(found):
        info = CODES[code]
        finding = Finding(
            path=loc.path,
            line=loc.line,
            column=1,
            end_line=loc.line,
            end_column=max(loc.end_column, 2),
            code=code,
            name=info.name,
            severity=severities.get(code, info.severity),
            message=message,
            hint=info.hint,
        )
        result.append((finding, evidence))
    return result


def _ratio_evidence(r: Ratios, low: bool) -> str:
    named = (
        ("first/last weight-gradient ratio", r.weight_grad),
        ("back-propagated signal ratio", r.act_grad),
        ("forward std ratio", r.forward),
    )
    kept = [(n, v) for n, v in named if v is not None]
    name, value = (min if low else max)(kept, key=lambda nv: nv[1])
    return f"{name} {value:.2g}"


def reference_step(report: ProbeReport) -> StepReport:
    """The first step in which the gradient reaches every layer it ever reaches.

    A zero-initialised layer (a classifier head, the last projection of a residual branch)
    passes exactly zero gradient to everything below it at initialisation; one update later
    it does not. Ratios and growth are measured from the first step without that artefact."""
    def zero(step: StepReport) -> set[tuple[str, str]]:
        return {
            (m.name, p.name)
            for m in step.layers
            for p in m.trained_params
            if not p.grad_none and p.grad_max_abs == 0
        }

    always = set.intersection(*(zero(s) for s in report.steps))
    return next((s for s in report.steps if zero(s) <= always), report.steps[0])


def layer_ratios(step: StepReport) -> Ratios:
    """Compare the first and last layers that have a positive, finite measurement.

    The model's own parameters (class tokens, position embeddings) are left out unless
    nothing else has any: they enter at the input although the model's output comes last.

    The back-propagated signal is compared by its norm per pass, not per element: global
    pooling spreads one gradient over every position of a feature map, which divides the
    per-element value by the number of positions (and so by the input resolution) but the
    norm only by its square root."""
    layers = tuple(m for m in step.layers if m.name) or step.layers

    def ratio(values: list[tuple[str, float | None]]) -> tuple[float | None, str, str]:
        kept = [(n, v) for n, v in values if v is not None and math.isfinite(v) and v > 0]
        if len(kept) < 2:
            return None, "", ""
        return kept[0][1] / kept[-1][1], kept[0][0], kept[-1][0]

    weight, first, last = ratio([(m.label, m.grad_rms) for m in layers])
    act, a_first, a_last = ratio([(m.label, _act_grad(m)) for m in layers])
    fwd, _, _ = ratio([(m.label, m.out_std) for m in layers])
    return Ratios(
        first or a_first or None, last or a_last or None, weight, act, 1 / fwd if fwd else None
    )


def layer_flags(step: StepReport, thresholds: Thresholds) -> dict[str, str]:
    """Layers whose gradient is far below ("vanishing") or above ("exploding") the last's."""
    named = [m for m in step.layers if m.name] or list(step.layers)
    layers = [m for m in named if m.act_grad_rms or m.grad_rms]
    if len(layers) < 2:
        return {}
    flags = {}
    last = layers[-1]
    for m in layers[:-1]:
        for mine, ref in ((_act_grad(m), _act_grad(last)), (m.grad_rms, last.grad_rms)):
            if mine is None or not ref or not math.isfinite(mine) or not math.isfinite(ref):
                continue
            if mine / ref < thresholds.vanishing_ratio:
                flags[m.label] = "vanishing"
            elif mine / ref > thresholds.exploding_ratio:
                flags[m.label] = "exploding"
    return flags


def _act_grad(m: ModuleStats) -> float | None:
    return m.act_grad_norm if m.act_grad_norm is not None else m.act_grad_rms


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2g}"


def _signal_text(r: Ratios) -> str:
    return (
        f"first/last weight-gradient ratio {fmt(r.weight_grad)}, back-propagated signal "
        f"ratio {fmt(r.act_grad)}, forward signal ratio (last/first std) {fmt(r.forward)}"
    )


def is_vanishing(r: Ratios, t: Thresholds) -> bool:
    """The weight-gradient ratio is low, or the back-propagated signal is and the forward
    signal confirms it.

    A weight gradient is (signal from above) x (activation from below), so the weight-
    gradient ratio is about the back-propagated ratio divided by the forward one. When the
    back-propagated signal alone is low, the weight gradients are balanced and the shrinkage
    comes from the head (small-init classifiers, global pooling); when both signals shrink
    they hide each other in the weight gradients (He et al.'s Xavier-initialised ReLU net)."""
    low = t.vanishing_ratio
    if r.weight_grad is not None and r.weight_grad < low:
        return True
    if r.act_grad is None or r.act_grad >= low:
        return False
    if r.forward is not None:
        return r.forward < low
    return r.weight_grad is None  # nothing to confirm or refute it with


def _vanishing(r: Ratios, t: Thresholds) -> str | None:
    if not is_vanishing(r, t):
        return None
    return (
        f"gradient vanishes between `{r.last}` and `{r.first}`: {_signal_text(r)} "
        f"(threshold {t.vanishing_ratio:g})"
    )


def _exploding(report: ProbeReport, r: Ratios, t: Thresholds) -> str | None:
    parts = []
    high = [v for v in (r.weight_grad, r.act_grad, r.forward) if v is not None]
    if high and max(high) > t.exploding_ratio:
        parts.append(
            f"gradient grows toward the input between `{r.last}` and `{r.first}`: "
            f"{_signal_text(r)} (threshold {t.exploding_ratio:g})"
        )
    worst = max(
        ((m.update_ratio, m.label) for m in report.steps[0].layers if m.update_ratio is not None),
        default=None,
    )
    if worst and worst[0] > t.update_ratio:
        parts.append(
            f"`{worst[1]}` has |grad|/|weight| = {worst[0]:.2g} (threshold {t.update_ratio:g})"
        )
    start = reference_step(report).step
    norms = [(s.step, s.grad_norm, s.loss) for s in report.steps if s.step >= start]
    first = norms[0][1]
    if len(norms) > 1 and first > 0 and math.isfinite(first):
        broken = next(
            (
                n
                for n in norms[1:]
                if not math.isfinite(n[1]) or (n[2] is not None and not math.isfinite(n[2]))
            ),
            None,
        )
        finite = [n for n in norms[1:] if math.isfinite(n[1])]
        peak = max(finite, key=lambda n: n[1], default=None)
        if peak is not None and peak[1] / first > t.step_growth:
            parts.append(
                f"global gradient norm grew {peak[1] / first:.2g}x over {peak[0] - start} "
                f"optimizer steps ({first:.2g} -> {peak[1]:.2g}, threshold "
                f"{t.step_growth:g})"
            )
        elif broken is not None:
            parts.append(
                f"global gradient norm went from {first:.2g} to NaN/Inf within "
                f"{broken[0] - start} optimizer steps"
            )
    return "; ".join(parts) or None


def _nonfinite(report: ProbeReport) -> tuple[str | None, int | None]:
    """The first NaN/Inf (forward, loss, backward, parameter gradient) and its step."""
    for step in report.steps:
        message = _nonfinite_in(step)
        if message:
            return message, step.step
    return None, None


def _nonfinite_in(step: StepReport) -> str | None:
    when = "at initialisation" if step.step == 0 else f"after {step.step} optimizer steps"
    fwd = next((m for m in step.modules if m.nonfinite_forward), None)
    if fwd:
        before = [m for m in step.modules if m.order < fwd.order and m.kind == "layer"]
        after = f" (the last layer with a finite output is `{before[-1].label}`)" if before else ""
        return f"`{fwd.label}` ({fwd.type}) outputs NaN/Inf in the forward pass {when}{after}"
    if step.loss is not None and not math.isfinite(step.loss):
        return f"the loss is {step.loss} {when}"
    bwd = sorted(
        (m for m in step.modules if m.nonfinite_backward),
        key=lambda m: m.backward_order if m.backward_order is not None else 0,
    )
    if bwd:
        return (
            f"the gradient w.r.t. the output of `{bwd[0].label}` ({bwd[0].type}) "
            f"contains NaN/Inf {when}"
        )
    grads = [
        f"{m.label}.{p.name}".lstrip(".") for m in step.layers for p in m.params if p.nonfinite
    ]
    if grads:
        return f"gradient of `{grads[0]}` contains NaN/Inf {when}"
    return None


def _symmetric(step: StepReport) -> tuple[str, set[str], str] | None:
    hits = [(m, p) for m in step.layers for p in m.params if p.duplicate_units > 0]
    if not hits:
        return None
    texts = []
    for m, p in hits[:4]:
        name = f"{m.label}.{p.name}".lstrip(".") if m.name else p.name
        if p.duplicate_units == p.units - 1:
            texts.append(f"all {p.units} units of `{name}` are identical")
        else:
            texts.append(f"{p.duplicate_units} of {p.units} units of `{name}` duplicate another")
    more = f" and {len(hits) - 4} more" if len(hits) > 4 else ""
    return (
        f"{'; '.join(texts)}{more}: equal weights receive equal gradients, so the symmetry "
        f"is never broken",
        {m.name for m, _ in hits},
        texts[0],
    )


def _disconnected(report: ProbeReport, skip: set[str]) -> tuple[str, Severity] | None:
    """Trainable parameters with no gradient, or an exactly zero one at every step."""
    none, zero = [], []
    for m in report.steps[0].layers:
        if m.name in skip:
            continue  # explained by the symmetric (constant) init reported as GL207
        for p in m.trained_params:
            name = f"{m.name}.{p.name}" if m.name else p.name
            if p.grad_none:
                none.append(name)
            elif all(_grad_max(s, m.name, p.name) == 0 for s in report.steps):
                zero.append(name)
    parts = []
    steps = len(report.steps)
    zero_text = "get an exactly zero gradient" + (
        f" at all {steps} steps"
        if steps > 1
        else " (a zero-initialised layer downstream, as in zero-init residual blocks, "
        "also does this at step 0: probe with --steps 2 to tell)"
    )
    for names, what in ((none, "get no gradient (grad is None)"), (zero, zero_text)):
        if names:
            shown = ", ".join(f"`{n}`" for n in names[:6])
            more = f" and {len(names) - 6} more" if len(names) > 6 else ""
            parts.append(f"{shown}{more} {what}")
    if not parts:
        return None
    # A zero gradient seen only at initialisation may be deliberate: advice, not a warning.
    severity = Severity.INFO if not none and steps == 1 else Severity.WARNING
    return "; ".join(parts) + ": they are cut off from the loss", severity


def _grad_max(step: StepReport, module: str, param: str) -> float | None:
    for m in step.layers:
        if m.name == module:
            return next((p.grad_max_abs for p in m.params if p.name == param), None)
    return None


def _diverse(step: StepReport, limit: float) -> StepReport:
    """`step` without the dead-unit shares of activations that saw one sample repeated."""
    modules = tuple(
        replace(m, dead_fraction=None)
        if m.batch_diversity is not None and m.batch_diversity < limit
        else m
        for m in step.modules
    )
    return replace(step, modules=modules)


def _activations(
    step: StepReport, attr: str, limit: float, text: str, measurable: bool
) -> str | None:
    if not measurable:
        return None
    hits: list[tuple[ModuleStats, float]] = []
    for m in step.modules:
        value = getattr(m, attr)
        if value is not None and value > limit:
            hits.append((m, value))
    if not hits:
        return None
    shown = "; ".join(
        f"`{m.label}` ({m.type}): " + text.format(pct=f"{v:.0%}") for m, v in hits[:3]
    )
    more = f"; and {len(hits) - 3} more modules" if len(hits) > 3 else ""
    return f"{shown}{more} (threshold {limit:.0%})"
