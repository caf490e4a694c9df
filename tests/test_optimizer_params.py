"""Focused tests of gradlint.semantics.optimizer_params."""

from __future__ import annotations

import textwrap

import libcst as cst
import pytest

from gradlint.semantics.index import TorchIndex
from gradlint.semantics.optimizer_params import UnupdatedParameters, unupdated_parameters
from gradlint.semantics.training import training_facts


def found_in(source: str) -> list[UnupdatedParameters]:
    return unupdated_parameters(
        training_facts(TorchIndex(cst.parse_module(textwrap.dedent(source))))
    )


@pytest.mark.parametrize(
    "imports, build, layer",
    [
        ("import torch", "torch.optim.SGD(model.parameters(), lr=0.1)", "torch.nn.Linear(512, 2)"),
        ("from torch import nn, optim", "optim.SGD(model.parameters(), 0.1)", "nn.Linear(512, 2)"),
        (
            "from torch.optim import Adam\nfrom torch.nn import Conv2d",
            "Adam(model.parameters())",
            "Conv2d(3, 8, 3)",
        ),
    ],
)
def test_replacement_after_the_optimizer(imports: str, build: str, layer: str) -> None:
    [found] = found_in(
        f"{imports}\noptimizer = {build}\nmodel.fc = {layer}\nfit(model, optimizer)\n"
    )
    assert (found.optimizer, found.missed) == ("optimizer", "model.fc")
    assert "model.parameters()" in found.reason


def test_params_alias_written_earlier_is_followed() -> None:
    [found] = found_in("""
        from torch import nn, optim
        def main():
            params = [p for p in model.parameters() if p.requires_grad]
            opt = optim.Adam(params, lr=1e-3)
            model.classifier[6] = nn.Linear(4096, 2)
            train(model, opt)
    """)
    assert found.missed == "model.classifier[6]"


@pytest.mark.parametrize(
    "source",
    [
        # the layer's kind is unknown (an imported factory)
        "from torch import optim\nfrom heads import make_head\n"
        "opt = optim.SGD(model.parameters(), 0.1)\nmodel.fc = make_head(512)\nfit(model, opt)\n",
        # parameters from a call whose model cannot be named
        "from torch import nn, optim\n"
        "opt = optim.SGD(get_model().parameters(), 0.1)\n"
        "model.fc = nn.Linear(8, 2)\nfit(model, opt)\n",
        # another model's layer
        "from torch import nn, optim\n"
        "opt = optim.SGD(model.parameters(), 0.1)\nteacher.fc = nn.Linear(8, 2)\nfit(model, opt)\n",
    ],
)
def test_unknowable_or_unrelated_stays_quiet(source: str) -> None:
    assert found_in(source) == []


@pytest.mark.parametrize(
    "opt_g, opt_d, models",
    [
        ("g_optimizer", "d_optimizer", ("G", "D")),
        ("opt_gen", "opt_disc", ("generator", "discriminator")),
        ("optimizerG", "optimizerD", ("netG", "netD")),
    ],
)
def test_swapped_pair_spellings(opt_g: str, opt_d: str, models: tuple[str, str]) -> None:
    gen, disc = models
    [found] = found_in(f"""
        import torch
        {gen} = Generator()
        {disc} = Discriminator()
        {opt_d} = torch.optim.Adam({disc}.parameters())
        {opt_g} = torch.optim.Adam({disc}.parameters())
    """)
    assert (found.optimizer, found.missed) == (opt_g, gen)


def test_swap_is_quiet_when_the_other_model_has_an_optimizer() -> None:
    assert not found_in("""
        import torch
        optimizer_D = torch.optim.Adam(netD.parameters())
        optimizer_G = torch.optim.Adam(netD.parameters())
        optimizer_E = torch.optim.Adam(netG.parameters())
    """)


def test_fully_swapped_pair_needs_a_loss_named_for_the_model() -> None:
    source = """
        import torch
        generator = Generator()
        discriminator = Discriminator()
        optimizer_g = torch.optim.Adam(discriminator.parameters())
        optimizer_d = torch.optim.Adam(generator.parameters())
        for x in loader:
            {loss}.backward()
            optimizer_d.step()
    """
    [found] = found_in(source.format(loss="discriminator_real_loss"))
    assert (found.optimizer, found.missed) == ("optimizer_d", "discriminator")
    assert found_in(source.format(loss="loss")) == []


def test_a_new_parameter_object_counts_as_a_replacement() -> None:
    [found] = found_in("""
        import torch
        from torch import nn
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        model.temperature = nn.Parameter(torch.ones(1))
        fit(model, optimizer)
    """)
    assert found.missed == "model.temperature"


def test_a_new_parameter_given_its_own_optimizer_is_quiet() -> None:
    assert not found_in("""
        import torch
        from torch import nn
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        model.temperature = nn.Parameter(torch.ones(1))
        calibration = torch.optim.LBFGS([model.temperature], lr=0.01)
        fit(model, optimizer, calibration)
    """)


def test_a_model_or_optimizer_name_bound_anew_is_another_object() -> None:
    assert not found_in("""
        import torch
        from torch import nn
        optim = torch.optim.SGD(model.parameters(), lr=1e-2)
        optim.step()
        from torch import optim
        model = resnet18()
        model.fc = nn.Linear(512, 10)
        optimizer = optim.SGD(model.parameters(), lr=1e-2)
    """)
    [found] = found_in("""
        import torch
        from torch import nn
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-2)
        model = nn.DataParallel(model)
        model.fc = nn.Linear(512, 10)
        fit(model, optimizer)
    """)
    assert found.missed == "model.fc"
