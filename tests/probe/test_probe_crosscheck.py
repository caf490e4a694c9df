"""Static findings on the model get a verdict from what the probe measured."""

from __future__ import annotations

import builtins
import dataclasses

import pytest

torch = pytest.importorskip("torch")

from probe_helpers import probe_in_process  # noqa: E402

from gradlint.findings import Finding, Severity  # noqa: E402
from gradlint.probe.analysis import analyze_with_evidence  # noqa: E402
from gradlint.probe.crosscheck import cross_check  # noqa: E402
from gradlint.probe.spec import Thresholds  # noqa: E402

BATCH = (64, 32)


def has_static_rule(code: str) -> bool:
    try:
        from gradlint.registry import find_rule
    except ImportError:
        return False
    return find_rule(code) is not None


def check(target: str, loss: str = "projection", steps: int = 1, shape=BATCH, **options):
    report = probe_in_process(target, shape, loss=loss, steps=steps, **options)
    return report, cross_check(report, analyze_with_evidence(report, Thresholds()), loss, steps)


def verdicts(result) -> dict[str, str]:
    return {v.static.code: v.verdict for v in result.verdicts}


def test_deep_saturating_stack_is_confirmed_by_vanishing_gradient():
    if not has_static_rule("GL101"):
        pytest.skip("static rule GL101 (deep-saturating-stack) is not in gradlint.rules yet")
    _, result = check("sigmoid_mlp.py:DeepSigmoidMLP")
    assert result.available and result.scope == "class"
    assert verdicts(result)["GL101"] == "confirmed"
    evidence = next(v.evidence for v in result.verdicts if v.static.code == "GL101")
    assert evidence.startswith("GL201 vanishing-gradient, first/last weight-gradient ratio")
    assert result.unpredicted == ()


def test_constant_init_is_confirmed_by_symmetric_neurons():
    if not has_static_rule("GL102"):
        pytest.skip("static rule GL102 (constant-weight-init) is not in gradlint.rules yet")
    _, result = check("zero_init.py:ZeroInitMLP")
    assert verdicts(result) == {"GL102": "confirmed"}
    assert "all 64 units" in result.verdicts[0].evidence


def test_softmax_before_cross_entropy_verdicts():
    if not has_static_rule("GL106"):
        pytest.skip("static rule GL106 (softmax-before-cross-entropy) is not in gradlint.rules "
                    "yet")
    _, result = check("softmax_classifier.py:SoftmaxClassifier", loss="cross_entropy")
    verdict = next(v for v in result.verdicts if v.static.code == "GL106")
    assert verdict.verdict == "confirmed" and "0.1x" in verdict.evidence
    assert verdict.in_model is False  # reported at the loss call in train()
    _, result = check("softmax_classifier.py:SoftmaxClassifier")
    assert verdicts(result)["GL106"] == "not measurable"


def static_finding(code: str, line: int) -> Finding:
    return Finding("m.py", line, 1, line, 2, code, "rule", Severity.WARNING, "static")


def test_verdict_table_without_the_engine_rules(monkeypatch):
    """Drive the verdicts with a stand-in lint_source so every branch is covered."""
    report, _ = check("softmax_classifier.py:SoftmaxClassifier", loss="cross_entropy")
    loc = report.location
    fake = [static_finding("GL106", loc.line + 2), static_finding("GL105", loc.line + 3),
            static_finding("GL104", loc.line + 4), static_finding("GL199", loc.line + 5),
            static_finding("GL101", loc.end_line + 3),  # outside the class: dropped
            static_finding("GL106", loc.end_line + 4)]  # training code: kept, labelled
    import gradlint.engine

    monkeypatch.setattr(gradlint.engine, "lint_source",
                        lambda source, path, config: dataclasses.make_dataclass(
                            "R", [("findings", tuple)])(tuple(fake)))
    result = cross_check(report, [], "cross_entropy", 1)
    assert verdicts(result) == {"GL106": "confirmed", "GL105": "not measurable",
                                "GL104": "not observed", "GL199": "not measurable"}
    assert [v.in_model for v in result.verdicts] == [True, True, True, True, False]
    gl104 = next(v for v in result.verdicts if v.static.code == "GL104")
    assert "--steps" in gl104.evidence


def test_detach_in_forward_is_confirmed_by_disconnected_parameter():
    if not has_static_rule("GL110"):
        pytest.skip("static rule GL110 (gradient-blocked-in-forward) is not in gradlint.rules "
                    "yet")
    _, result = check("detached.py:DetachedBranch")
    assert verdicts(result) == {"GL110": "confirmed"}
    assert "`branch.weight`, `branch.bias` get no gradient" in result.verdicts[0].evidence


def test_runtime_findings_no_rule_predicted_are_listed():
    _, result = check("relu_mlp.py:DeepReluMLP", init_args={"init": "xavier"})
    assert verdicts(result) == {}
    assert [f.code for f in result.unpredicted] == ["GL201"]


def test_missing_engine_degrades_to_unavailable(monkeypatch):
    report = probe_in_process("zero_init.py:ZeroInitMLP", BATCH)
    real_import = builtins.__import__

    def no_engine(name, *args, **kwargs):
        if name == "gradlint.engine":
            raise ImportError("No module named 'gradlint.engine'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_engine)
    runtime = analyze_with_evidence(report, Thresholds())
    result = cross_check(report, runtime, "projection", 1)
    assert not result.available
    assert result.reason.startswith("static analysis unavailable")
    assert [f.code for f in result.unpredicted] == ["GL207"]


def test_rnn_trained_without_clipping_is_confirmed_across_steps():
    if not has_static_rule("GL104"):
        pytest.skip("static rule GL104 (rnn-without-clipping) is not in gradlint.rules yet")
    _, result = check("rnn_training.py:LongSequenceRNN", loss="mse", steps=3,
                      shape=(16, 200, 8))
    gl104 = next(v for v in result.verdicts if v.static.code == "GL104")
    assert gl104.verdict == "confirmed" and not gl104.in_model
    assert gl104.evidence.startswith("GL202 exploding-gradient")
    assert result.unpredicted == ()
