from __future__ import annotations

import re

import libcst as cst

from gradlint import Invalid, Rule, Severity, Valid
from gradlint.findings import Fix

# Misspellings of `requires_grad` / `requires_grad_`: a missing or extra `s`, a dropped
# underscore, `gradient`, and the common `requries` / `reqiures` transpositions.
_TYPO = re.compile(r"(requires?|requries|reqiures|requres)_?(grads?|gradients?)(_?)")
_CORRECT = frozenset({"requires_grad", "requires_grad_"})


class RequiresGradTypo(Rule):
    """
    ## What it does
    Flags a misspelled `requires_grad`: `p.require_grad = False`, `x.requires_grads = True`,
    `w.requries_grad = True`, `layer.require_grad_(False)`.

    ## Why is this bad?
    A tensor (and an `nn.Parameter`) accepts any new Python attribute, so assigning
    `p.require_grad = False` raises nothing and changes nothing: the layer you meant to freeze
    keeps training, and the input you meant to differentiate gets no `.grad`. The misspelled
    method `require_grad_()` at least fails loudly, but only once that line runs.

    ## Fix
    `--fix` renames the attribute to `requires_grad` (or the method to `requires_grad_`).

    ## Known limitations
    Only the receivers other than `self` are checked, and a name the file also uses in any
    other way (a constructor argument, a read `obj.require_grad`) is taken for a custom
    attribute of the project's own class and left alone. Setting the correct `requires_grad`
    on an `nn.Module` (rather than on its parameters) is a different no-op this rule does not
    see.
    """

    CODE = "GL126"
    NEEDS = ("grad",)
    SEVERITY = Severity.ERROR
    MESSAGE = "`{typo}` is not `{correct}`; {consequence}"
    HINT = "Spell it `requires_grad` (attribute) or `requires_grad_()` (method)"

    VALID = [
        Valid("""
            import torchvision
            model = torchvision.models.resnet18(weights="DEFAULT")
            for p in model.parameters():
                p.requires_grad = False
        """),
        Valid("""
            import torch
            x = torch.randn(3, 4).requires_grad_()
            w = torch.zeros(4, requires_grad=True)
            model.fc.weight.requires_grad_(False)
        """),
        # a project's own flag, set and read under its misspelled name
        Valid("""
            import torch
            class Adapter(torch.nn.Module):
                def __init__(self, require_grad=True):
                    super().__init__()
                    self.require_grad = require_grad
            def freeze(adapter):
                adapter.require_grad = False
                if adapter.require_grad:
                    raise RuntimeError("still trainable")
        """),
        # reading the flag, and the keyword of a factory
        Valid("""
            import torch
            trainable = [p for p in model.parameters() if p.requires_grad]
            mask = torch.ones(8, requires_grad=False)
        """),
        # a word in a comment or a string is no attribute
        Valid("""
            import torch
            # freeze: p.require_grad = False does nothing, use requires_grad
            for p in backbone.parameters():
                p.requires_grad_(False)
            print("layers that require_grad:", sum(p.requires_grad for p in backbone.parameters()))
        """),
        # a config object's own field, passed as a keyword elsewhere
        Valid("""
            import torch
            cfg.require_grad = True
            layer = build_layer(require_grad=cfg.require_grad)
        """),
    ]
    INVALID = [
        Invalid(
            """
            import torchvision
            model = torchvision.models.resnet18(weights="DEFAULT")
            for p in model.parameters():
                p.require_grad = False
        """,
            line=4,
            message="`require_grad` is not `requires_grad`",
            fixed="""
            import torchvision
            model = torchvision.models.resnet18(weights="DEFAULT")
            for p in model.parameters():
                p.requires_grad = False
        """,
        ),
        Invalid(
            """
            import torch
            x = torch.linspace(0, 1, 100)
            x.requries_grad = True
            y = (x ** 2).sum()
            y.backward()
        """,
            line=3,
            fixed="""
            import torch
            x = torch.linspace(0, 1, 100)
            x.requires_grad = True
            y = (x ** 2).sum()
            y.backward()
        """,
        ),
        Invalid(
            """
            from torch import nn
            encoder = nn.LSTM(32, 64)
            for name, param in encoder.named_parameters():
                if "bias" in name:
                    param.requires_grads = False
        """,
            line=5,
        ),
        Invalid(
            """
            import torch
            def freeze(module):
                module.weight.require_grad_(False)
        """,
            line=3,
            fixed="""
            import torch
            def freeze(module):
                module.weight.requires_grad_(False)
        """,
        ),
    ]

    # freezing a pretrained embedding inside the model
    INVALID.append(
        Invalid(
            """
            from torch import nn
            class Tagger(nn.Module):
                def __init__(self, vectors):
                    super().__init__()
                    self.embedding = nn.Embedding.from_pretrained(vectors)
                    self.embedding.weight.require_grad = False
        """,
            line=6,
            fixed="""
            from torch import nn
            class Tagger(nn.Module):
                def __init__(self, vectors):
                    super().__init__()
                    self.embedding = nn.Embedding.from_pretrained(vectors)
                    self.embedding.weight.requires_grad = False
        """,
        )
    )
    INVALID.append(
        Invalid(
            """
            import torch
            noise = torch.randn(16, 100)
            noise.requires_gradient = True
        """,
            line=3,
        )
    )

    def visit_Module(self, node: cst.Module) -> None:
        self._typos: list[cst.Attribute] = []  # every `<x>.<misspelling>`, `self` included
        self._assigned: set[cst.CSTNode] = set()
        self._called: set[cst.CSTNode] = set()

    def visit_Attribute(self, node: cst.Attribute) -> None:
        name = node.attr.value
        if name not in _CORRECT and _TYPO.fullmatch(name) is not None:
            self._typos.append(node)

    def visit_Assign(self, node: cst.Assign) -> None:
        for target in node.targets:
            self._assigned.add(target.target)

    def visit_Call(self, node: cst.Call) -> None:
        self._called.add(node.func)

    def leave_Module(self, original_node: cst.Module) -> None:
        if not self._typos:
            return
        code = self.index.source  # the text as read (`module.code` would print the tree anew)
        for attr in self._typos:
            name = attr.attr.value
            if isinstance(attr.value, cst.Name) and attr.value.value == "self":
                continue  # `self.require_grad = ...`: a class's own attribute
            if attr in self._called:
                correct, consequence = "requires_grad_", "the call raises AttributeError"
            elif attr in self._assigned:
                correct = "requires_grad"
                consequence = "the assignment adds a plain attribute and changes nothing"
            else:
                continue  # a read of the misspelled name
            spelled = [a for a in self._typos if a.attr.value == name]
            if len(re.findall(rf"\b{name}\b", code)) != len(spelled):
                continue  # also a parameter, keyword or plain name: the project's own word
            if any(a not in self._assigned and a not in self._called for a in spelled):
                continue  # set and read under that name: a custom flag
            self.report(
                attr,
                typo=name,
                correct=correct,
                consequence=consequence,
                fix=Fix(f"rename to `{correct}`", (self.replace(attr.attr, correct),)),
            )
