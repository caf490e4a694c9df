from __future__ import annotations

import libcst as cst

from gradlint import Invalid, Rule, Severity, Valid
from gradlint.project import ClassFacts, Deferred, FileSummary
from gradlint.semantics.train_mode import eval_left_on
from gradlint.semantics.training import training_facts


class EvalModeLeftOn(Rule):
    """
    ## What it does
    Flags `model.eval()` (directly, or in a helper such as `evaluate(model)`) inside a
    training loop when nothing calls `model.train()` again before the loop's next training
    step, for a model that holds dropout or batch norm.

    ## Why is this bad?
    `model.eval()` is a switch, not a scope: it stays on until `model.train()` turns it off.
    After the first validation every later epoch trains with dropout switched off and with
    batch norm normalizing by its frozen running statistics instead of the batch's own, which
    it no longer updates. Nothing fails; the model just regularizes less, batch norm layers
    drift out of step with the weights, and the run reaches a worse accuracy than the same
    code with one more line. The usual shape is `model.train()` called once, before the epoch
    loop, and `model.eval()` at the end of every epoch.

    ## Known limitations
    A helper of another file (`from engine import train_one_epoch`) is unknown and may switch
    the mode itself, so nothing is reported through it. The model must be known to hold
    dropout, batch norm or a transformer layer (a class of this file or of another linted
    file, an `nn.Sequential`, a local factory function returning one, a torchvision model),
    and must be what the loop's optimizer steps: a frozen teacher kept in eval, or a backbone
    whose new head alone is trained, is left alone. A training step is a `backward()` that an
    optimizer step follows in the same function. Lightning and the Hugging Face `Trainer`
    switch modes themselves and never show this shape.
    """

    CODE = "GL124"
    NEEDS = ("eval", "train(False)")
    SEVERITY = Severity.ERROR
    MESSAGE = (
        "`{call}` leaves `{model}` in eval mode and the loop's next pass trains it without "
        "`{model}.train()`; its {layer} behaves as at inference while training"
    )
    HINT = "Call model.train() at the start of every epoch (or inside the training function)"

    VALID = [
        Valid("""
            import torch
            from torch import nn
            model = nn.Sequential(nn.Linear(784, 64), nn.ReLU(), nn.Dropout(0.5), nn.Linear(64, 9))
            optimizer = torch.optim.Adam(model.parameters())
            for epoch in range(10):
                model.train()
                for x, y in train_loader:
                    optimizer.zero_grad()
                    loss = nn.functional.cross_entropy(model(x), y)
                    loss.backward()
                    optimizer.step()
                model.eval()
                with torch.no_grad():
                    val_loss = sum(nn.functional.cross_entropy(model(x), y) for x, y in val_loader)
        """),
        # the training function switches the mode back itself
        Valid("""
            import torch
            from torch import nn
            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.conv = nn.Conv2d(3, 16, 3)
                    self.bn = nn.BatchNorm2d(16)
                    self.fc = nn.Linear(16, 10)
            def train_one_epoch(model, loader, optimizer):
                model.train()
                for x, y in loader:
                    optimizer.zero_grad()
                    torch.nn.functional.cross_entropy(model(x), y).backward()
                    optimizer.step()
            def evaluate(model, loader):
                model.eval()
                with torch.no_grad():
                    return sum(model(x).argmax(1).eq(y).sum().item() for x, y in loader)
            net = Net()
            opt = torch.optim.SGD(net.parameters(), lr=0.1)
            for epoch in range(30):
                train_one_epoch(net, train_loader, opt)
                evaluate(net, val_loader)
        """),
        # no dropout and no batch norm: the mode changes nothing
        Valid("""
            import torch
            from torch import nn
            model = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 1))
            opt = torch.optim.SGD(model.parameters(), lr=0.01)
            model.train()
            for epoch in range(100):
                for x, y in loader:
                    opt.zero_grad()
                    nn.functional.mse_loss(model(x), y).backward()
                    opt.step()
                model.eval()
                print(model(x_val).mean())
        """),
        # evaluated once, after the last epoch
        Valid("""
            import torch
            import torchvision
            model = torchvision.models.resnet18(num_classes=10)
            opt = torch.optim.SGD(model.parameters(), lr=0.1)
            model.train()
            for epoch in range(epochs):
                for x, y in loader:
                    opt.zero_grad()
                    torch.nn.functional.cross_entropy(model(x), y).backward()
                    opt.step()
                if epoch == epochs - 1:
                    model.eval()
                    test(model)
            model.eval()
        """),
        # train and eval phases in one loop, each choosing its mode
        Valid("""
            import torch
            import torchvision
            model = torchvision.models.resnet50()
            for epoch in range(25):
                for phase in ["train", "val"]:
                    if phase == "train":
                        model.train()
                    else:
                        model.eval()
                    for inputs, labels in loaders[phase]:
                        optimizer.zero_grad()
                        with torch.set_grad_enabled(phase == "train"):
                            loss = criterion(model(inputs), labels)
                            if phase == "train":
                                loss.backward()
                                optimizer.step()
        """),
        # the model comes from a factory this file cannot see into
        Valid("""
            import torch
            from models import build_model
            model = build_model(cfg)
            model.train()
            for epoch in range(epochs):
                for x, y in loader:
                    opt.zero_grad()
                    model(x, y).backward()
                    opt.step()
                model.eval()
                validate(model)
        """),
        # evaluated in the `else:` of the batch loop; the epoch loop switches back first
        Valid("""
            import torch
            import torchvision
            model = torchvision.models.densenet121()
            optimizer = torch.optim.Adam(model.parameters())
            for epoch in range(n_epochs):
                model.train()
                for data, target in train_loader:
                    optimizer.zero_grad()
                    loss = criterion(model(data), target)
                    loss.backward()
                    optimizer.step()
                else:
                    model.eval()
                    with torch.no_grad():
                        valid_loss = sum(criterion(model(x), y).item() for x, y in valid_loader)
        """),
        # after each task, gradients in eval mode for a Fisher estimate: no optimizer step
        Valid("""
            import torch
            from torch import nn
            model = nn.Sequential(nn.Linear(1, 64), nn.Dropout(0.1), nn.ReLU(), nn.Linear(64, 1))
            def fisher(model, x, y):
                model.zero_grad()
                nn.functional.mse_loss(model(x), y).backward()
                return [p.grad.pow(2) for p in model.parameters()]
            for x, y in tasks:
                model.train()
                opt = torch.optim.SGD(model.parameters(), lr=0.01)
                for step in range(1000):
                    opt.zero_grad()
                    nn.functional.mse_loss(model(x), y).backward()
                    opt.step()
                model.eval()
                weights = fisher(model, x, y)
        """),
        # only the new head is trained: the frozen backbone may stay in eval mode
        Valid("""
            import torch
            import torchvision
            net = torchvision.models.resnet50(weights="DEFAULT")
            net.fc = torch.nn.Linear(2048, 37)
            net.train()
            optim = torch.optim.SGD(net.fc.parameters(), lr=0.01, momentum=0.9)
            def evaluate(net, loader):
                net.eval()
                with torch.no_grad():
                    return sum(net(x).argmax(1).eq(y).sum().item() for x, y in loader)
            for epoch in range(10):
                for x, y in loader:
                    optim.zero_grad()
                    torch.nn.functional.cross_entropy(net(x), y).backward()
                    optim.step()
                evaluate(net, test_loader)
        """),
        # distillation: the teacher stays in eval mode on purpose, the student is trained
        Valid("""
            import torch
            import torchvision
            teacher = torchvision.models.resnet50()
            student = torchvision.models.resnet18()
            opt = torch.optim.SGD(student.parameters(), lr=0.1)
            for epoch in range(epochs):
                student.train()
                for x, y in loader:
                    teacher.eval()
                    with torch.no_grad():
                        soft = teacher(x).softmax(-1)
                    loss = torch.nn.functional.kl_div(student(x).log_softmax(-1), soft)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
        """),
    ]
    INVALID = [
        Invalid(
            """
            import torch
            from torch import nn
            model = nn.Sequential(nn.Linear(784, 64), nn.ReLU(), nn.Dropout(0.5), nn.Linear(64, 9))
            optimizer = torch.optim.Adam(model.parameters())
            model.train()
            for epoch in range(10):
                for x, y in train_loader:
                    optimizer.zero_grad()
                    loss = nn.functional.cross_entropy(model(x), y)
                    loss.backward()
                    optimizer.step()
                model.eval()
                with torch.no_grad():
                    val_loss = sum(nn.functional.cross_entropy(model(x), y) for x, y in val_loader)
        """,
            line=12,
            message="its Dropout behaves as at inference",
        ),
        # the training function never switches back; the evaluation switches to eval
        Invalid(
            """
            import torch
            from torch import nn
            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.conv = nn.Conv2d(3, 16, 3)
                    self.bn = nn.BatchNorm2d(16)
                    self.fc = nn.Linear(16, 10)
            def train_one_epoch(model, loader, optimizer):
                for x, y in loader:
                    optimizer.zero_grad()
                    torch.nn.functional.cross_entropy(model(x), y).backward()
                    optimizer.step()
            def evaluate(model, loader):
                model.eval()
                with torch.no_grad():
                    return sum(model(x).argmax(1).eq(y).sum().item() for x, y in loader)
            net = Net()
            opt = torch.optim.SGD(net.parameters(), lr=0.1)
            for epoch in range(30):
                train_one_epoch(net, train_loader, opt)
                evaluate(net, val_loader)
        """,
            line=22,
            message="its BatchNorm2d",
        ),
        # a trainer class: validation every few epochs inside fit()
        Invalid(
            """
            import torch
            import torchvision
            class Trainer:
                def __init__(self, loader):
                    self.model = torchvision.models.resnet18(num_classes=10)
                    self.opt = torch.optim.SGD(self.model.parameters(), lr=0.1)
                    self.loader = loader
                def validate(self):
                    self.model.eval()
                    with torch.no_grad():
                        return [self.model(x) for x, _ in self.loader]
                def fit(self, epochs):
                    self.model.train()
                    for epoch in range(epochs):
                        for x, y in self.loader:
                            self.opt.zero_grad()
                            torch.nn.functional.cross_entropy(self.model(x), y).backward()
                            self.opt.step()
                        if epoch % 5 == 0:
                            self.validate()
        """,
            line=20,
        ),
        # only the new head is trained, and the head holds dropout
        Invalid(
            """
            import torch
            import torchvision
            from torch import nn
            net = torchvision.models.resnet50(weights="DEFAULT")
            net.fc = nn.Sequential(nn.Linear(2048, 512), nn.Dropout(0.5), nn.Linear(512, 37))
            net.train()
            optim = torch.optim.SGD(net.fc.parameters(), lr=0.01, momentum=0.9)
            for epoch in range(10):
                for x, y in loader:
                    optim.zero_grad()
                    torch.nn.functional.cross_entropy(net(x), y).backward()
                    optim.step()
                net.eval()
                print(sum(net(x).argmax(1).eq(y).sum().item() for x, y in test_loader))
        """,
            line=13,
            message="its Dropout",
        ),
        # the model comes from a factory function of the file
        Invalid(
            """
            import torch
            from torch import nn
            def conv_mixer(dim, depth, n_classes=10):
                return nn.Sequential(
                    nn.Conv2d(1, dim, 4, stride=4),
                    nn.GELU(),
                    nn.BatchNorm2d(dim),
                    *[nn.Sequential(nn.Conv2d(dim, dim, 1), nn.ReLU()) for _ in range(depth)],
                    nn.AdaptiveAvgPool2d(1),
                    nn.Flatten(),
                    nn.Linear(dim, n_classes),
                )
            model = conv_mixer(64, 4)
            optimizer = torch.optim.Adam(model.parameters())
            for epoch in range(30):
                for x, y in train_loader:
                    optimizer.zero_grad()
                    nn.functional.cross_entropy(model(x), y).backward()
                    optimizer.step()
                model.eval()
                print(sum(model(x).argmax(1).eq(y).sum().item() for x, y in val_loader))
        """,
            line=20,
            message="its BatchNorm2d",
        ),
        # `model.train(False)` is `model.eval()`
        Invalid(
            """
            import torch
            from torch import nn
            class Tagger(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.encoder = nn.TransformerEncoderLayer(d_model=64, nhead=4)
                    self.head = nn.Linear(64, 9)
            def fit(model, loader, val_loader, optimizer):
                for epoch in range(20):
                    for tokens, tags in loader:
                        optimizer.zero_grad()
                        loss = nn.functional.cross_entropy(model(tokens), tags)
                        loss.backward()
                        optimizer.step()
                    model.train(False)
                    score(model, val_loader)
            tagger = Tagger()
            fit(tagger, loader, val_loader, torch.optim.Adam(tagger.parameters()))
        """,
            line=15,
        ),
    ]

    def visit_Module(self, node: cst.Module) -> None:
        code = self.context.module.code_for_node
        for found in eval_left_on(training_facts(self.index)):
            if found.layer:
                self.report(found.call, call=code(found.call), model=found.model, layer=found.layer)
            elif found.imported:
                call = code(found.call)
                self.defer(found.call, found.imported, call=call, model=found.model)

    @classmethod
    def resolve_deferred(cls, item: Deferred, facts: ClassFacts, where: FileSummary) -> str | None:
        if not facts.mode_layer:
            return None  # the imported model holds no dropout or batch norm this tool can see
        model = str(item.data.get("model", "model"))
        return cls.MESSAGE.format(
            call=item.data.get("call", ""), model=model, layer=facts.mode_layer
        )
