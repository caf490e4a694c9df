from __future__ import annotations

import libcst as cst

from gradlint import Invalid, Rule, Severity, Valid
from gradlint.findings import Fix
from gradlint.semantics.loss_history import graph_accumulations


class LossGraphAccumulation(Rule):
    """
    ## What it does
    Flags a loss that a training loop backpropagates and also adds, with its autograd
    history, to a variable that outlives the pass: `total_loss += loss`,
    `running = running + loss * n`, `losses.append(loss)`.

    ## Why is this bad?
    A loss tensor remembers how it was computed: its `grad_fn` links back through every
    operation of the forward pass. `total_loss += loss` makes `total_loss` a tensor whose
    history now includes this pass, and the next pass adds its own, so the graph of every
    step stays reachable until the accumulator dies (at the end of the epoch, or never).
    `backward()` frees the saved activations, but the graph nodes and the loss tensors of
    every step are kept: memory creeps up step after step, and the "number" logged at the
    end is a tensor that still requires grad. The PyTorch FAQ lists this as a classic cause
    of running out of memory. Accumulate a plain number (`loss.item()`, `float(loss)`) or a
    detached tensor (`loss.detach()`) instead.

    ## Fix
    `--fix` writes `loss.item()` where the accumulator starts as a plain number and is never
    used as a tensor in the function, and `loss.detach()` elsewhere (the types stay as they
    were; only the history goes).

    ## Known limitations
    The loss must be the value the same loop backpropagates (or a torch criterion's result in
    a loop that backpropagates), and the accumulator a plain name or attribute of the same
    function. Meters (`meter.update(loss)`), dictionaries and helpers are not followed. An
    accumulator that is itself backpropagated (truncated BPTT, summed micro-batch losses), or
    bound anew at the top of every pass, is left alone, and so is anything under
    `torch.no_grad()` or `torch.inference_mode()`.
    """

    CODE = "GL121"
    NEEDS = ("backward",)
    SEVERITY = Severity.WARNING
    MESSAGE = (
        "`{accumulator}` collects `{loss}` with its autograd graph in every pass; the graphs "
        "of all steps stay alive and memory grows"
    )
    HINT = "Accumulate `loss.item()` (or `loss.detach()`) instead of the loss tensor"

    VALID = [
        Valid("""
            import torch
            from torch import nn
            def train_epoch(model, loader, optimizer):
                criterion = nn.CrossEntropyLoss()
                total_loss = 0.0
                for images, labels in loader:
                    optimizer.zero_grad()
                    loss = criterion(model(images), labels)
                    loss.backward()
                    optimizer.step()
                    total_loss += loss.item()
                print(f"train loss {total_loss / len(loader):.4f}")
        """),
        # detached, converted or read through .data
        Valid("""
            import torch
            running, history, seen = 0.0, [], 0.0
            for step, (x, y) in enumerate(loader):
                loss = torch.nn.functional.mse_loss(model(x), y)
                loss.backward()
                optimizer.step()
                running += float(loss)
                history.append(loss.detach())
                seen = seen + loss.data * x.size(0)
        """),
        # truncated BPTT: the summed loss is what gets backpropagated
        Valid("""
            import torch
            for epoch in range(epochs):
                hidden = model.init_hidden()
                total = 0
                for t in range(seq_len):
                    out, hidden = model(inputs[t], hidden)
                    total = total + criterion(out, targets[t])
                total.backward()
                optimizer.step()
        """),
        # per-chunk losses stacked and backpropagated after the inner loop
        Valid("""
            import torch
            for batch in loader:
                optimizer.zero_grad()
                losses = []
                for chunk in batch.split(4):
                    loss = model(chunk).pow(2).mean()
                    losses.append(loss)
                torch.stack(losses).mean().backward()
                optimizer.step()
        """),
        # accumulated under no_grad; the pass itself re-binds the list
        Valid("""
            import torch
            total_loss = 0
            for x, y in loader:
                step_losses = []
                loss = loss_fn(model(x), y)
                loss.backward()
                step_losses.append(loss)
                with torch.no_grad():
                    total_loss += loss
        """),
        # the test loss of each epoch is computed under inference_mode: it has no graph
        Valid("""
            import torch
            test_losses = []
            for epoch in range(epochs):
                model.train()
                loss = torch.nn.functional.l1_loss(model(x_train), y_train)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                model.eval()
                with torch.inference_mode():
                    test_loss = torch.nn.functional.l1_loss(model(x_test), y_test)
                test_losses.append(test_loss)
        """),
        # no backward in this loop: an evaluation that only sums
        Valid("""
            import torch
            @torch.no_grad()
            def evaluate(model, loader, criterion):
                total = 0
                for x, y in loader:
                    total += criterion(model(x), y)
                return total / len(loader)
        """),
    ]
    INVALID = [
        Invalid(
            """
            import torch
            from torch import nn
            def train_epoch(model, loader, optimizer):
                criterion = nn.CrossEntropyLoss()
                total_loss = 0.0
                for images, labels in loader:
                    optimizer.zero_grad()
                    loss = criterion(model(images), labels)
                    loss.backward()
                    optimizer.step()
                    total_loss += loss
                print(f"train loss {total_loss / len(loader):.4f}")
        """,
            line=11,
            message="`total_loss` collects `loss` with its autograd graph",
            fixed="""
            import torch
            from torch import nn
            def train_epoch(model, loader, optimizer):
                criterion = nn.CrossEntropyLoss()
                total_loss = 0.0
                for images, labels in loader:
                    optimizer.zero_grad()
                    loss = criterion(model(images), labels)
                    loss.backward()
                    optimizer.step()
                    total_loss += loss.item()
                print(f"train loss {total_loss / len(loader):.4f}")
        """,
        ),
        # the mean is returned: the caller may use it as a tensor, so the fix detaches
        Invalid(
            """
            import torch
            def train(model, loader, opt, scaler):
                epoch_loss = 0
                for x, y in loader:
                    with torch.autocast("cuda"):
                        loss = torch.nn.functional.cross_entropy(model(x), y)
                    opt.zero_grad()
                    scaler.scale(loss).backward()
                    scaler.step(opt)
                    scaler.update()
                    epoch_loss = epoch_loss + loss * x.size(0)
                return epoch_loss / len(loader.dataset)
        """,
            line=11,
            fixed="""
            import torch
            def train(model, loader, opt, scaler):
                epoch_loss = 0
                for x, y in loader:
                    with torch.autocast("cuda"):
                        loss = torch.nn.functional.cross_entropy(model(x), y)
                    opt.zero_grad()
                    scaler.scale(loss).backward()
                    scaler.step(opt)
                    scaler.update()
                    epoch_loss = epoch_loss + loss.detach() * x.size(0)
                return epoch_loss / len(loader.dataset)
        """,
        ),
        # a list of losses kept for plotting
        Invalid(
            """
            import torch.nn as nn
            criterion = nn.MSELoss()
            train_losses = []
            for epoch in range(20):
                running = 0.0
                for i, (x, y) in enumerate(loader):
                    optimizer.zero_grad()
                    loss = criterion(net(x), y)
                    loss.backward()
                    optimizer.step()
                    train_losses.append(loss)
            plt.plot([float(v) for v in train_losses])
        """,
            line=11,
        ),
        # a running sum reset only every 100 steps still holds 100 graphs
        Invalid(
            """
            import torch.nn as nn
            criterion = nn.MSELoss()
            for epoch in range(20):
                running = 0.0
                for i, (x, y) in enumerate(loader):
                    loss = criterion(net(x), y)
                    loss.backward()
                    optimizer.step()
                    running += loss
                    if i % 100 == 99:
                        print(running / 100)
                        running = 0.0
        """,
            line=9,
        ),
        # Accelerate's backward
        Invalid(
            """
            import torch
            def fit(model, loader, optimizer, accelerator):
                losses = []
                for batch in loader:
                    outputs = model(**batch)
                    loss = outputs.loss
                    accelerator.backward(loss)
                    optimizer.step()
                    losses.append(loss)
                return losses
        """,
            line=9,
            fixed="""
            import torch
            def fit(model, loader, optimizer, accelerator):
                losses = []
                for batch in loader:
                    outputs = model(**batch)
                    loss = outputs.loss
                    accelerator.backward(loss)
                    optimizer.step()
                    losses.append(loss.detach())
                return losses
        """,
        ),
    ]

    def visit_Module(self, node: cst.Module) -> None:
        for found in graph_accumulations(self.index):
            method = "item" if found.plain_number else "detach"
            name = found.loss.value
            fix = Fix(
                f"accumulate `{name}.{method}()`",
                (self.replace(found.loss, f"{name}.{method}()"),),
            )
            self.report(found.node, accumulator=found.accumulator, loss=name, fix=fix)
