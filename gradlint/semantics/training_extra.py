"""More training facts: where gradients are cleared, which names hold sequence lengths,
and how large a learning rate each optimizer family tolerates.

Helpers for the rules on `zero_grad`, vanilla RNNs and learning rates; they sit beside
`gradlint.semantics.training` and never change it.
"""

from __future__ import annotations

import builtins
import re
from dataclasses import dataclass

import libcst as cst

from gradlint.semantics.index import TorchIndex
from gradlint.semantics.names import dotted_name
from gradlint.semantics.nodes import findall
from gradlint.semantics.training import TrainingFacts, TrainingStep, parameters_calls
from gradlint.semantics.training_walk import receiver

# Lower-case fragments of a called name that clear gradients: `optimizer.zero_grad()`,
# `model.zero_grad(set_to_none=True)`, Lightning's `optimizer_zero_grad`, Paddle's `clear_grad`,
# Chainer's `cleargrads`.
CLEAR_CALL_FRAGMENTS = ("zero_grad", "clear_grad", "cleargrad", "zerograd")
# In-place tensor methods that wipe `p.grad` when called on it: `p.grad.zero_()`.
CLEAR_GRAD_METHODS = frozenset({"zero_", "fill_"})
# GradScaler / Accelerate methods that take the optimizer but never clear its gradients.
NON_CLEARING_METHODS = frozenset(
    {
        "step",
        "unscale_",
        "update",
        "scale",
        "backward",
        "clip_grad_norm_",
        "clip_grad_value_",
        "prepare",
        "prepare_optimizer",
        "get_last_lr",
        "state_dict",
        "load_state_dict",
        "add_param_group",
        "clip_gradients",
        "toggle_optimizer",
        "untoggle_optimizer",
        "manual_backward",
        "log",
        "log_dict",
    }
)
# Names that hold a sequence length: `seq_len`, `MAX_LEN`, `window`, `n_steps`, `block_size`.
_MAX_DEPTH = 3  # helper-calls-helper chains followed when looking for a clearing


def numeric_literal(expr: cst.BaseExpression | None) -> float | None:
    """`0.1`, `1`, `1e0`, `1_000` as a float; None for anything else (names, `float("1")`)."""
    if isinstance(expr, (cst.Integer, cst.Float)):
        try:
            return float(expr.evaluated_value)
        except (TypeError, ValueError):
            return None  # not a plain decimal number
    return None


def is_clearing(node: cst.CSTNode, others: frozenset[str] = frozenset()) -> bool:
    """One node that clears gradients by itself: `opt.zero_grad()`, `p.grad = None`,
    `p.grad.zero_()`, `del p.grad`; a `zero_grad()` of one of `others` (other optimizers
    stepped beside this one) does not count."""
    if isinstance(node, cst.Call):
        name = _bare_name(node.func)
        if name is not None and any(f in name.lower() for f in CLEAR_CALL_FRAGMENTS):
            owner = node.func.value if isinstance(node.func, cst.Attribute) else None
            return owner is None or dotted_name(owner) not in others
        return (
            isinstance(node.func, cst.Attribute)
            and node.func.attr.value in CLEAR_GRAD_METHODS
            and _touches_grad(node.func.value)
        )
    if isinstance(node, cst.Assign):  # `p.grad = None`, `p.grad = torch.zeros_like(p)`
        cleared = _is_name(node.value, "None") or "zero" in (
            _bare_name(node.value.func) or "" if isinstance(node.value, cst.Call) else ""
        )
        return cleared and any(_touches_grad(t.target) for t in node.targets)
    if isinstance(node, cst.Del):
        return _touches_grad(node.target)
    return False


def clears_gradients(
    index: TorchIndex,
    region: cst.CSTNode,
    others: frozenset[str] = frozenset(),
    depth: int = _MAX_DEPTH,
) -> bool:
    """`region` clears gradients itself or through a helper defined in this file."""
    for node in findall(region, (cst.Call, cst.Assign, cst.Del)):
        if is_clearing(node, others):
            return True
        helper = local_function(index, node) if depth > 0 else None
        if (
            helper is not None
            and helper is not region
            and clears_gradients(index, helper, others, depth - 1)
        ):
            return True
    return False


def local_function(index: TorchIndex, node: cst.CSTNode) -> cst.FunctionDef | None:
    """The function of this file that `helper(...)` or `self.helper(...)` calls, if any."""
    if not isinstance(node, cst.Call):
        return None
    if isinstance(node.func, cst.Name) and index.qualified(node.func) is None:
        return index.functions.get(node.func.value)
    if isinstance(node.func, cst.Attribute) and _is_name(node.func.value, "self"):
        return index.functions.get(node.func.attr.value)
    return None


def stepped_elsewhere(region: cst.CSTNode, optimizer: cst.BaseExpression) -> frozenset[str]:
    """Other optimizers stepped in `region` (`opt_d` beside `opt_g` in a GAN step): clearing
    one of them leaves the gradients of `optimizer` in place."""
    found: set[str] = set()
    for node in findall(region, cst.Call):
        call = cst.ensure_type(node, cst.Call)
        if not isinstance(call.func, cst.Attribute) or call.func.attr.value != "step":
            continue
        owner = call.func.value
        args = [a.value for a in call.args if a.keyword is None]
        name = dotted_name(args[0]) if len(args) == 1 else None  # `scaler.step(opt_d)`
        found.add(name or dotted_name(owner) or "")
    return frozenset(found - {dotted_name(optimizer) or "", ""})


def hands_optimizer_away(
    index: TorchIndex, region: cst.CSTNode, optimizer: cst.BaseExpression
) -> bool:
    """An unknown call in `region` receives the optimizer (`trainer.update(model, opt)`), so
    it may clear the gradients where this file cannot see."""
    key = dotted_name(optimizer)
    if key is None:
        return True  # `self.optimizers()[0].step()`: cannot tell what else sees it
    for node in findall(region, cst.Call):
        call = cst.ensure_type(node, cst.Call)
        if _bare_name(call.func) in NON_CLEARING_METHODS or local_function(index, call):
            continue  # GradScaler / accelerate plumbing, or a helper already inspected
        if _says_it_does_not_clear(_bare_name(call.func)):
            continue  # `utils.clip_gradient(optimizer, 5)`, `adjust_learning_rate(optimizer, e)`
        name = index.qualified(call.func)
        if name is not None and name.startswith("torch."):
            continue  # torch's own functions never clear gradients
        if isinstance(call.func, cst.Name) and hasattr(builtins, call.func.value):
            continue  # `print(optimizer)`, `isinstance(optimizer, ...)`
        if any(dotted_name(arg.value) == key for arg in call.args):
            return True
    return False


# words in a helper's name that say what it does to the optimizer, none of it clearing
_NON_CLEARING_WORDS = frozenset(
    {"clip", "clamp", "lr", "learning", "rate", "save", "checkpoint", "log", "print", "plot"}
)
_CLEARING_WORDS = frozenset({"zero", "clear", "reset", "step", "update", "train", "optimize"})


def _says_it_does_not_clear(name: str | None) -> bool:
    """`clip_gradient`, `adjust_learning_rate`, `save_checkpoint`: named for something else,
    and nothing in the name says it clears, steps or trains."""
    words = set(re.split(r"_+|(?<=[a-z])(?=[A-Z])", name or "")) - {""}
    words = {w.lower() for w in words}
    return bool(words & _NON_CLEARING_WORDS) and not words & _CLEARING_WORDS


def _is_name(node: cst.CSTNode, value: str) -> bool:
    return isinstance(node, cst.Name) and node.value == value


def _touches_grad(expr: cst.BaseExpression) -> bool:
    """`p.grad`, `p.grad.data`, `param.grad[...]`: an expression reaching a `.grad`."""
    while isinstance(expr, (cst.Attribute, cst.Subscript)):
        if isinstance(expr, cst.Attribute) and expr.attr.value == "grad":
            return True
        expr = expr.value
    return False


def _bare_name(func: cst.BaseExpression) -> str | None:
    if isinstance(func, cst.Attribute):
        return func.attr.value
    if isinstance(func, cst.Name):
        return func.value
    return None


@dataclass(frozen=True)
class LrLimit:
    """The learning rate from which an optimizer family overshoots, and what is usual."""

    limit: float
    typical: str


# Why these limits (literal learning rates at or above them are reported):
# - sgd: the update is lr·g; with momentum 0.9 the effective step is ~10·lr·g. ImageNet
#   ResNets use 0.1 at batch 256, so 1.0 is ten times the largest common value.
# - adam: Adam's update is ~lr·m/√v with |m/√v| ≲ 1 whatever the gradient scale, so lr is
#   the per-weight step itself; 0.1 moves every weight by about its own typical magnitude
#   (~1/√fan_in) at each step. Adamax / NAdam / RAdam / AdamW share the normalisation.
# - rmsprop: the same normalised step as Adam without momentum on the numerator (default 1e-2).
# - adagrad: steps shrink as 1/√(sum of squared gradients), so a large first lr decays on its
#   own; 0.1–0.5 appear in practice, 1.0 does not (default 1e-2).
# - adadelta: lr only rescales a ratio of running RMS values that already has the units of
#   the weights; it is designed around lr = 1.0 (its default), so only ~10× that is reported.
# LBFGS (line search, default lr=1), Rprop (sign-based), LARS/LAMB/Lion/Adafactor (trust
# ratios, relative steps) are not in the table and never reported.
LR_LIMITS: dict[str, LrLimit] = {
    "sgd": LrLimit(1.0, "0.01–0.1 with momentum"),
    "adam": LrLimit(0.1, "1e-4–1e-3"),
    "rmsprop": LrLimit(0.1, "1e-4–1e-2"),
    "adagrad": LrLimit(1.0, "0.01–0.1"),
    "adadelta": LrLimit(10.0, "1.0 (its default)"),
}
# Optimizer class (short name, after `Fused`/`Paged` prefixes and `8bit` suffixes) -> family.
OPTIMIZER_FAMILIES = {
    "SGD": "sgd",
    "ASGD": "sgd",
    "Adam": "adam",
    "AdamW": "adam",
    "Adamax": "adam",
    "NAdam": "adam",
    "RAdam": "adam",
    "SparseAdam": "adam",
    "RMSprop": "rmsprop",
    "Adagrad": "adagrad",
    "Adadelta": "adadelta",
}
# timm's `create_optimizer_v2(model, opt="adamw", lr=...)` names -> family.
FACTORY_FAMILIES = {
    "sgd": "sgd",
    "momentum": "sgd",
    "nesterov": "sgd",
    "adam": "adam",
    "adamw": "adam",
    "nadam": "adam",
    "nadamw": "adam",
    "radam": "adam",
    "adamax": "adam",
    "rmsprop": "rmsprop",
    "rmsproptf": "rmsprop",
    "adagrad": "adagrad",
    "adadelta": "adadelta",
}
OPTIMIZER_MODULES = (
    "torch.optim.",
    "bitsandbytes.optim.",
    "apex.optimizers.",
    "transformers.",
    "deepspeed.ops.adam.",
)
# Schedulers that overwrite the optimizer's lr with their own absolute values (the
# optimizer's `lr=` is never used as such).
ABSOLUTE_LR_SCHEDULERS = frozenset(
    {"torch.optim.lr_scheduler.OneCycleLR", "torch.optim.lr_scheduler.CyclicLR"}
)
# schedules whose factor multiplies the optimizer's lr, which is then only a scale (Noam:
# `LambdaLR(Adam(..., lr=1), lambda s: d_model**-0.5 * min(...))`)
SCALING_LR_SCHEDULERS = frozenset(
    {"torch.optim.lr_scheduler.LambdaLR", "torch.optim.lr_scheduler.MultiplicativeLR"}
)


def optimizer_family(name: str | None) -> str | None:
    """`sgd` for `torch.optim.SGD`, `adam` for `bitsandbytes.optim.PagedAdamW8bit`."""
    if name is None or not name.startswith(OPTIMIZER_MODULES) or "lr_scheduler" in name:
        return None
    short = name.rsplit(".", 1)[-1]
    short = re.sub(r"^(Fused|Paged|DeepSpeedCPU|CPU)+", "", short)
    short = re.sub(r"(8bit|32bit)$", "", short)
    return OPTIMIZER_FAMILIES.get(short)


def cleared_by_siblings(facts: TrainingFacts, region: cst.CSTNode, step: TrainingStep) -> bool:
    """Every model whose parameters `step`'s optimizer holds is cleared in `region`, by its
    own `zero_grad()` or another optimizer's (InfoGAN: an optimizer over G and D together,
    cleared by the zero_grad of G's and D's own optimizers)."""
    built = step.construction
    wanted = _models_of(built.params if built is not None else None)
    if not wanted:
        return False
    cleared: set[str] = set()
    for node in findall(region, cst.Call):
        call = cst.ensure_type(node, cst.Call)
        if not isinstance(call.func, cst.Attribute) or call.func.attr.value != "zero_grad":
            continue
        owner = call.func.value
        is_optimizer, other = facts.optimizer(owner, step.function)
        if is_optimizer:
            cleared |= _models_of(other.params if other is not None else None) or set()
        elif (name := dotted_name(owner)) is not None:
            cleared.add(name)  # `self.G.zero_grad()`
    return wanted <= cleared


def _models_of(params: cst.BaseExpression | None) -> set[str] | None:
    """`{"self.G", "self.D"}` for `chain(self.G.parameters(), self.D.parameters())`."""
    if params is None:
        return None
    names = {dotted_name(receiver(call)) for call in parameters_calls(params)}
    if not names or None in names:
        return None
    return {name for name in names if name is not None}
