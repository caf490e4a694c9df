from __future__ import annotations

import libcst as cst

from gradlint import Invalid, Rule, Severity, Valid
from gradlint.semantics.optimizer_params import unupdated_parameters
from gradlint.semantics.training import training_facts


class ParametersOutsideOptimizer(Rule):
    """
    ## What it does
    Flags an optimizer that cannot update the parameters it is meant to train:

    - built over `model.parameters()` (or `model.fc.parameters()`) before a layer of that
      model is put in place, `model.fc = nn.Linear(512, 10)` or
      `model.classifier[6] = nn.Linear(4096, 2)`, and still used afterwards;
    - built over the other model of a named pair, `optimizer_G = Adam(netD.parameters())`
      beside `optimizer_D = Adam(netD.parameters())`, while `netG` is in no optimizer; or
      both of a pair swapped, with `optimizer_G` stepped right after `loss_G.backward()`.

    ## Why is this bad?
    An optimizer copies the list of parameters it is given when it is built. A layer
    assigned to the model afterwards is not in that list: the new head is trained by no one
    and keeps its random initialisation, while the loss still falls a little through the
    rest of the network. With the optimizers of a GAN swapped, the generator is never
    updated and the discriminator is stepped twice. Nothing raises in either case.

    ## Known limitations
    The order is read inside one function (or the module level) only. A replacement in
    another function, or in a branch beside the optimizer's (`if`/`else`), stays quiet, as
    does one followed by a new optimizer, an `add_param_group(...)` or anything reading the
    new layer's parameters (freezing it, say). Only layers known to hold parameters count
    (`nn.Identity()` loses nothing). A swapped pair is reported only when the names leave no
    doubt: G/gen/generator against D/disc/discriminator/critic, or any other suffix, and a
    fully swapped pair only when a loss named for one model is stepped by the optimizer
    holding the other.
    """

    CODE = "GL120"
    NEEDS = ("parameters",)
    SEVERITY = Severity.ERROR
    MESSAGE = "`{optimizer}` never updates `{missed}`: {reason}"
    HINT = (
        "Build the optimizer after the model's layers are in place, over the model it trains "
        "(or add the new layer with optimizer.add_param_group)"
    )

    VALID = [
        Valid("""
            import torch
            from torch import nn
            from torchvision import models
            model = models.resnet50(weights="IMAGENET1K_V2")
            model.fc = nn.Linear(model.fc.in_features, 2)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
            train(model, optimizer, epochs=25)
        """),
        # the new head joins the optimizer as a param group of its own
        Valid("""
            import torch
            from torch import nn
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
            model.head = nn.Linear(768, num_classes)
            optimizer.add_param_group({"params": model.head.parameters(), "lr": 1e-3})
            fit(model, optimizer)
        """),
        # rebuilt once the classifier is replaced
        Valid("""
            import torch.optim as optim
            import torch.nn as nn
            optimizer = optim.Adam(model.parameters(), lr=3e-4)
            pretrain(model, optimizer)
            model.classifier[6] = nn.Linear(4096, 10)
            optimizer = optim.Adam(model.parameters(), lr=1e-4)
            finetune(model, optimizer)
        """),
        # a parameter-free head loses nothing
        Valid("""
            from torch import nn, optim
            opt = optim.SGD(backbone.parameters(), lr=0.1)
            backbone.fc = nn.Identity()
            train(backbone, opt)
        """),
        # frozen on purpose after the replacement
        Valid("""
            from torch import nn, optim
            optimizer = optim.SGD(filter(lambda p: p.requires_grad, net.parameters()), lr=0.01)
            net.fc = nn.Linear(512, 100)
            net.fc.requires_grad_(False)
            train(net, optimizer)
        """),
        # the order between the branches is unknowable
        Valid("""
            import torch
            from torch import nn
            if args.resume:
                optimizer = torch.optim.Adam(model.parameters())
            else:
                model.fc = nn.Linear(2048, args.classes)
            run(model, optimizer)
        """),
        # the whole model is replaced and given a new optimizer
        Valid("""
            import torch
            optimizer = torch.optim.Adam(model.parameters())
            model = Net()
            optimizer = torch.optim.Adam(model.parameters())
            train(model, optimizer)
        """),
        # layers built in a module's __init__ are construction, not replacement
        Valid("""
            import torch
            from torch import nn
            class Classifier(nn.Module):
                def __init__(self, backbone):
                    super().__init__()
                    self.opt = torch.optim.SGD(backbone.parameters(), lr=0.1)
                    self.backbone = backbone
                    self.backbone.fc = nn.Linear(512, 10)
        """),
        # a GAN whose optimizers each hold their own model
        Valid("""
            import torch.optim as optim
            optimizerD = optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
            optimizerG = optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
        """),
        # the names of a pair are swapped, but no loss says which optimizer steps which
        Valid("""
            import torch
            opt_g = torch.optim.Adam(netD.parameters())
            opt_d = torch.optim.Adam(netG.parameters())
            for x in loader:
                step(netG, netD, opt_g, opt_d, x)
        """),
        # the stale optimizer is not used after the replacement
        Valid("""
            import torch
            from torch import nn
            optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
            train(model, optimizer)
            model.fc = nn.Linear(512, 10)
            evaluate(model)
        """),
    ]
    INVALID = [
        Invalid(
            """
            import torch
            from torch import nn
            from torchvision import models
            model = models.resnet50(weights="IMAGENET1K_V2")
            optimizer = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
            model.fc = nn.Linear(model.fc.in_features, 2)
            train(model, optimizer, epochs=25)
        """,
            line=6,
            message=(
                "`optimizer` never updates `model.fc`: it was built over `model.parameters()` "
                "before `model.fc` was replaced"
            ),
        ),
        # VGG fine-tuning: one entry of the classifier replaced, inside a function
        Invalid(
            """
            from torch import nn, optim
            from torchvision.models import vgg16
            def build(num_classes):
                net = vgg16(pretrained=True)
                for p in net.features.parameters():
                    p.requires_grad = False
                opt = optim.SGD(filter(lambda p: p.requires_grad, net.parameters()), lr=1e-3)
                net.classifier[6] = nn.Linear(4096, num_classes)
                return net, opt
        """,
            line=8,
        ),
        # the optimizer holds only the old head
        Invalid(
            """
            import torch.nn as nn
            import torch.optim as optim
            optimizer = optim.Adam(model.fc.parameters(), lr=1e-3)
            model.fc = nn.Sequential(nn.Dropout(0.2), nn.Linear(512, 5))
            for epoch in range(10):
                for x, y in loader:
                    optimizer.zero_grad()
                    nn.functional.cross_entropy(model(x), y).backward()
                    optimizer.step()
        """,
            line=4,
        ),
        # the generator's optimizer copy-pasted over the discriminator
        Invalid(
            """
            import torch
            netG = Generator().cuda()
            netD = Discriminator().cuda()
            optimizerD = torch.optim.Adam(netD.parameters(), lr=4e-5, betas=(0.5, 0.999))
            optimizerG = torch.optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
        """,
            line=5,
            message=(
                "`optimizerG` never updates `netG`: it was built over `netD.parameters()`, "
                "which `optimizerD` already updates"
            ),
        ),
        # both optimizers of a pair swapped: each steps the other model with its own loss
        Invalid(
            """
            import torch
            from torch import optim
            def train_model(G, D, loader, z_dim=20):
                d_optimizer = optim.Adam(G.parameters(), 1e-4, [0.0, 0.9])
                g_optimizer = torch.optim.Adam(D.parameters(), 4e-4, [0.0, 0.9])
                for images in loader:
                    fake = G(torch.randn(images.size(0), z_dim, 1, 1))
                    d_loss = bce(D(images), ones) + bce(D(fake), zeros)
                    d_optimizer.zero_grad()
                    d_loss.backward()
                    d_optimizer.step()
                    g_loss = bce(D(G(torch.randn(images.size(0), z_dim, 1, 1))), ones)
                    g_optimizer.zero_grad()
                    g_loss.backward()
                    g_optimizer.step()
        """,
            line=4,
            message=(
                "`d_optimizer` never updates `D`: it was built over `G.parameters()` yet steps "
                "`d_loss.backward()`"
            ),
        ),
        # CycleGAN-style pair of discriminators
        Invalid(
            """
            import itertools
            from torch.optim import Adam
            optimizer_G = Adam(itertools.chain(G_AB.parameters(), G_BA.parameters()), lr=2e-4)
            optimizer_D_A = Adam(D_A.parameters(), lr=2e-4)
            optimizer_D_B = Adam(D_A.parameters(), lr=2e-4)
            D_B = Discriminator()
        """,
            line=5,
        ),
    ]

    def visit_Module(self, node: cst.Module) -> None:
        for found in unupdated_parameters(training_facts(self.index)):
            self.report(
                found.node, optimizer=found.optimizer, missed=found.missed, reason=found.reason
            )
