"""Healthy stock architectures probe clean; broken variants of them are still caught.

The architectures are built in code (tests/probe/stock/): compact replicas of the vision
models with their original block structure and init recipes, transformers from small
configs. Each is probed in-process with the default loss at its usual input size."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from probe_helpers import codes  # noqa: E402
from stock import text, vision  # noqa: E402
from stock.cases import BATCH, CASES, Case, images, tokens  # noqa: E402
from torch import nn  # noqa: E402

from gradlint.findings import Severity  # noqa: E402
from gradlint.probe.execute import run_probe  # noqa: E402
from gradlint.probe.spec import ProbeSpec, Thresholds  # noqa: E402
from gradlint.probe.stats import Location, ProbeReport  # noqa: E402

FAST = {"resnet18", "mobilenet_v3_small-256", "lstm_lm"}  # one of each kind in the quick run


def probe(case: Case, **options: object) -> ProbeReport:
    if case.needs:
        pytest.importorskip(case.needs)
    torch.manual_seed(0)
    model = case.build()
    example = case.inputs(torch.Generator().manual_seed(0))
    spec = ProbeSpec(target=case.name, **{**case.options, **options})  # type: ignore[arg-type]
    return run_probe(spec, model, Location(f"{case.name}.py", 1, name=case.name), example)


def warnings(report: ProbeReport) -> list[str]:
    return [f"{f.code}: {f.message}" for f in report.findings()
            if f.severity.rank >= Severity.WARNING.rank]


@pytest.mark.parametrize(
    "case",
    [pytest.param(c, id=c.name, marks=() if c.name in FAST else pytest.mark.slow)
     for c in CASES],
)
def test_healthy_architecture_is_clean(case):
    assert warnings(probe(case)) == []


def test_the_suite_covers_twenty_architectures():
    assert len(CASES) >= 20


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet18", "lstm_lm", "convnext"])
def test_optimizer_steps_on_the_default_loss_do_not_run_away(name):
    """The default loss is bounded below: SGD settles instead of growing the outputs forever."""
    report = probe(next(c for c in CASES if c.name == name), steps=4, lr=0.01)
    norms = [s.grad_norm for s in report.steps]
    assert max(norms) / norms[0] < Thresholds().step_growth
    assert warnings(report) == []


def test_zero_initialised_head_is_measured_after_one_update():
    report = probe(Case("vit", lambda: vision.VisionTransformer(depth=2), images(224)))
    assert len(report.steps) == 2  # the look-ahead step
    backbone = report.steps[1].layers[0]
    assert backbone.name == "patch_embed" and backbone.grad_rms
    assert warnings(report) == []


# -- broken variants of the same architectures ---------------------------------------------

class DetachedStem(vision.ResNet):
    """The stem's output leaves the graph: the stem never trains."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x).detach())
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def small_images(gen: torch.Generator) -> torch.Tensor:
    return torch.randn(BATCH, 3, 64, 64, generator=gen)


def test_really_disconnected_stem_is_caught():
    report = probe(Case("detached", lambda: DetachedStem(width=8), small_images))
    (finding,) = [f for f in report.findings() if f.code == "GL206"]
    assert finding.severity is Severity.WARNING and "`stem.0.weight`" in finding.message


def test_disconnected_backbone_behind_a_zero_initialised_head_is_caught():
    class FrozenTrunk(vision.VisionTransformer):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                x = self.patch_embed(x)
            x = x.flatten(2).transpose(1, 2)
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
            return self.head(self.norm(self.blocks(x + self.pos_embed))[:, 0])

    report = probe(Case("frozen", lambda: FrozenTrunk(image=64, depth=1), small_images))
    (finding,) = [f for f in report.findings() if f.code == "GL206"]
    assert finding.severity is Severity.WARNING and "`patch_embed.weight`" in finding.message


def test_really_dead_relu_layer_is_caught():
    def build() -> nn.Module:
        model = vision.ResNet(width=8)
        with torch.no_grad():
            model.stages[1][0].bn1.bias.fill_(-10.0)  # every unit after it is off
        return model

    report = probe(Case("dead", build, small_images))
    (finding,) = [f for f in report.findings() if f.code == "GL203"]
    assert "`stages.1.0.relu`" in finding.message and "100%" in finding.message


def test_dead_squeeze_excitation_is_still_caught():
    """Behind global pooling only a unit that never fires is judged: here all of them."""
    def build() -> nn.Module:
        model = vision.MobileNetV3()
        with torch.no_grad():
            model.features[4].block[2].fc1.bias.fill_(-10.0)
        return model

    report = probe(Case("dead-se", build, images(224)))
    assert "GL203" in codes(report.findings())


class SigmoidCNN(nn.Module):
    """A plain 12-layer conv stack with sigmoids and no normalisation: vanishes."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, 16, 3, padding=1), nn.Sigmoid()]
        for _ in range(11):
            layers += [nn.Conv2d(16, 16, 3, padding=1), nn.Sigmoid()]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean(dim=(2, 3)))


def test_real_vanishing_sigmoid_stack_is_caught():
    report = probe(Case("sigmoid-cnn", SigmoidCNN, lambda g: torch.randn(BATCH, 3, 32, 32,
                                                                          generator=g)))
    assert "GL201" in codes(report.findings())


def test_unused_pooler_is_reported_when_only_the_hidden_states_enter_the_loss():
    case = Case("bert", lambda: text.hf_model("bert"), tokens(32), "transformers")
    report = probe(case, output="last_hidden_state")
    (finding,) = [f for f in report.findings() if f.code == "GL206"]
    assert "`pooler.dense.weight`" in finding.message
    assert warnings(probe(case)) == []  # both outputs enter the default loss
