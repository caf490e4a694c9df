"""The acceptance models, probed in-process: which GL2xx findings each one produces."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from probe_helpers import codes, probe_in_process  # noqa: E402

from gradlint.findings import Severity  # noqa: E402
from gradlint.probe.analysis import layer_ratios  # noqa: E402
from gradlint.probe.spec import Thresholds  # noqa: E402
from gradlint.probe.stats import Location, ModuleStats, ParamStats, ProbeReport, StepReport  # noqa: E402,E501

BATCH = (64, 32)


def test_deep_sigmoid_mlp_vanishes():
    report = probe_in_process("sigmoid_mlp.py:DeepSigmoidMLP", BATCH)
    findings = report.findings()
    assert codes(findings) == {"GL201"}
    ratios = layer_ratios(report.steps[0])
    assert ratios.weight_grad < 1e-6
    assert ratios.act_grad < 1e-6
    (finding,) = findings
    assert finding.path.endswith("sigmoid_mlp.py") and finding.line == 7
    assert finding.name == "vanishing-gradient" and finding.severity is Severity.WARNING


@pytest.mark.parametrize("depth", [20, 30])
def test_relu_mlp_with_kaiming_init_is_clean(depth):
    report = probe_in_process("relu_mlp.py:DeepReluMLP", BATCH,
                              init_args={"depth": depth, "init": "kaiming"})
    assert not codes(report.findings()) & {"GL201", "GL202", "GL205"}
    assert report.findings() == []


def test_relu_mlp_with_standard_normal_init_explodes():
    report = probe_in_process("relu_mlp.py:DeepReluMLP", BATCH, init_args={"init": "normal"})
    found = codes(report.findings())
    assert found & {"GL202", "GL205"}
    if "GL202" in found:
        assert layer_ratios(report.steps[0]).act_grad > 1e3


def test_relu_mlp_with_xavier_init_shrinks_the_signal():
    """He et al.'s case: the back-propagated and forward signals shrink about 2x per layer."""
    report = probe_in_process("relu_mlp.py:DeepReluMLP", BATCH, init_args={"init": "xavier"})
    ratios = layer_ratios(report.steps[0])
    assert ratios.act_grad < 1e-3
    assert ratios.forward < 1e-3
    assert codes(report.findings()) == {"GL201"}


def test_zero_init_gives_symmetric_neurons():
    report = probe_in_process("zero_init.py:ZeroInitMLP", BATCH)
    findings = report.findings()
    assert codes(findings) == {"GL207"}  # fc1's zero gradient is explained by GL207, not GL206
    assert "all 64 units of `fc1.weight` are identical" in findings[0].message
    assert findings[0].severity is Severity.ERROR


def test_detached_branch_names_the_cut_off_parameters():
    report = probe_in_process("detached.py:DetachedBranch", BATCH)
    (finding,) = report.findings()
    assert finding.code == "GL206"
    assert "`branch.weight`, `branch.bias`" in finding.message
    assert "main" not in finding.message and "head" not in finding.message


def test_softmax_outputs_weaken_the_cross_entropy_gradient():
    report = probe_in_process("softmax_classifier.py:SoftmaxClassifier", BATCH,
                              loss="cross_entropy")
    assert report.output["probabilities"] is True
    assert report.output["gradient_ratio"] == pytest.approx(0.1, rel=0.3)
    logits = probe_in_process("relu_mlp.py:DeepReluMLP", BATCH, loss="cross_entropy",
                              init_args={"depth": 3})
    assert logits.output["probabilities"] is False


def test_vanilla_rnn_with_large_recurrent_weights_explodes_across_steps():
    report = probe_in_process("rnn.py:VanillaRNN", (16, 200, 8), loss="mse", steps=3,
                              init_args={"nonlinearity": "relu", "scale": 2.2})
    findings = {f.code: f for f in report.findings()}
    assert "GL202" in findings
    assert "within 1 optimizer steps" in findings["GL202"].message
    assert "GL205" in findings  # the update it caused overflows the next forward pass


def test_tanh_rnn_gradient_explodes_at_initialisation():
    report = probe_in_process("rnn.py:VanillaRNN", (16, 200, 8), loss="mse", steps=3)
    assert codes(report.findings()) == {"GL202"}
    assert len(report.steps) == 3


def test_lstm_is_clean_across_steps():
    report = probe_in_process("rnn.py:ClippedLSTM", (16, 200, 8), loss="mse", steps=3)
    assert report.findings() == []
    assert all(s.loss is not None for s in report.steps)


def test_non_finite_forward_names_the_module():
    report = probe_in_process("broken.py:NaNModel", (8, 32))
    (finding,) = report.findings()
    assert finding.code == "GL205"
    assert "NaNModel" in finding.message and "`fc`" in finding.message


def test_dead_relu_from_negative_bias():
    from torch import nn

    from gradlint.probe import GradientProbe

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    with torch.no_grad():
        model[0].bias[:24] = -100.0  # 75% of the units can never fire
    with GradientProbe(model) as probe:
        model(torch.randn(32, 16)).sum().backward()
    findings = probe.report().findings()
    (dead,) = [f for f in findings if f.code == "GL203"]
    assert "75% of units output 0" in dead.message


def test_saturated_sigmoid_from_large_weights():
    from torch import nn

    from gradlint.probe import GradientProbe

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.Sigmoid(), nn.Linear(64, 4))
    with torch.no_grad():
        model[0].weight.mul_(50)
    with GradientProbe(model) as probe:
        model(torch.randn(32, 64)).sum().backward()
    assert "GL204" in codes(probe.report().findings())


def _layer(name: str, grad: float, act: float, std: float) -> ModuleStats:
    param = ParamStats(name="weight", shape=(4, 4), grad_norm=grad * 4, weight_norm=1.0,
                       grad_mean_abs=grad, grad_max_abs=grad, grad_nonzero=16)
    return ModuleStats(name=name, type="Linear", kind="layer", order=int(name), calls=1,
                       out_std=std, act_grad_rms=act, params=(param,))


def synthetic(*steps: tuple[float, float | None]) -> ProbeReport:
    """Two-layer reports whose global gradient norm per step is the given value."""
    result = []
    for i, (norm, loss) in enumerate(steps):
        layers = (_layer("0", norm / 4 / 2 ** 0.5, 1.0, 1.0),
                  _layer("1", norm / 4 / 2 ** 0.5, 1.0, 1.0))
        result.append(StepReport(i, layers, loss))
    return ProbeReport(tuple(result), Location("m.py", 3, 9, "M", 10), batch_size=32)


def test_growth_across_steps_is_exploding():
    assert synthetic((1.0, 1.0), (2.0, 0.9)).findings() == []
    (finding,) = synthetic((1.0, 1.0), (30.0, 2.0), (500.0, 9.0)).findings()
    assert finding.code == "GL202"
    assert "grew 5e+02x over 2 optimizer steps" in finding.message
    assert (finding.path, finding.line, finding.end_column) == ("m.py", 3, 10)


def test_thresholds_are_configurable():
    report = synthetic((1.0, 1.0), (30.0, 2.0))
    assert report.findings() == []
    lowered = Thresholds().with_values({"step-growth": 10})
    assert codes(report.findings(lowered)) == {"GL202"}
    report = probe_in_process("relu_mlp.py:DeepReluMLP", BATCH, init_args={"init": "xavier"})
    assert report.findings(Thresholds(vanishing_ratio=1e-9)) == []


def test_token_ids_with_adam_steps():
    from gradlint.probe.spec import InputSpec

    report = probe_in_process("relu_mlp.py:TokenClassifier", InputSpec((8, 12), "long", 0, 30000),
                              steps=2, optimizer="adam", lr=0.001)
    assert [s.step for s in report.steps] == [0, 1]
    embed = report.steps[0].layers[0]
    assert embed.type == "Embedding" and embed.grad_rms is not None
    assert report.findings() == []  # sparse embedding gradients are not "vanishing"


def test_several_inputs():
    report = probe_in_process("relu_mlp.py:TwoInputs", (8, 32), (8, 8))
    assert [m.name for m in report.steps[0].layers] == ["a", "b", "head"]
    assert report.batch_size == 8


def test_zero_init_residual_branch_is_not_a_warning():
    """Zero-initialising a residual branch's last layer is good practice: the gradient of the
    branch's first layer is zero at step 0 only."""
    from torch import nn

    from gradlint.probe import GradientProbe

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = nn.Linear(16, 16)
            self.outer = nn.Linear(16, 16)
            nn.init.zeros_(self.outer.weight)
            nn.init.zeros_(self.outer.bias)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.outer(torch.relu(self.inner(x)))

    torch.manual_seed(0)
    model = Block()
    r = torch.randn(16)  # output units must get different gradients, as in any real loss
    with GradientProbe(model) as probe:
        (model(torch.randn(32, 16)) * r).sum().backward()
    (finding,) = probe.report().findings()
    assert finding.code == "GL206" and finding.severity is Severity.INFO
    assert "--steps 2" in finding.message
    from gradlint.probe.execute import run_probe
    from gradlint.probe.spec import InputSpec, ProbeSpec

    spec = ProbeSpec("x.py:Block", inputs=(InputSpec((32, 16)),), steps=2)
    report = run_probe(spec, model, probe.location)
    assert report.findings() == []  # after one update the branch carries gradient


def test_small_scale_vectors_are_not_exploding():
    """LayerScale-style gains start near zero on purpose; only matrices count for the
    |grad|/|weight| test."""
    from torch import nn

    from gradlint.probe import GradientProbe

    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(16, 16)
            self.gamma = nn.Parameter(torch.full((16,), 1e-6))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.gamma * self.fc(x)

    torch.manual_seed(0)
    model = Scaled()
    r = torch.randn(16)
    with GradientProbe(model) as probe:
        (model(torch.randn(32, 16)) * r).sum().backward()
    report = probe.report()
    gamma = next(p for m in report.steps[0].layers for p in m.params if p.name == "gamma")
    assert gamma.grad_norm / gamma.weight_norm > 1e3
    assert "GL202" not in codes(report.findings())


@pytest.mark.parametrize("dtype", ["bfloat16", "float64"])
def test_other_model_dtypes(dtype):
    report = probe_in_process("relu_mlp.py:DeepReluMLP", BATCH, dtype=dtype,
                              init_args={"depth": 4})
    layers = report.steps[0].layers
    assert len(layers) == 4 and all(m.grad_rms and m.act_grad_rms for m in layers)
    assert report.findings() == []
