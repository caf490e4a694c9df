"""Operations that cut the autograd graph, and values that carry no gradient to lose.

`.detach()`, `.data`, `.item()`, `torch.no_grad()` ... return a value that autograd no longer
connects to the parameters; indices, shapes, masks and fresh tensors carry no gradient whatever
their input; targets, teachers and EMA copies are meant to be constant.
"""

from __future__ import annotations

import re

import libcst as cst

from gradlint.semantics.index import TorchIndex
from gradlint.semantics.syntax import is_name

# Tensor methods whose result is no longer connected to the graph (name -> how it is shown).
CUT_METHODS: dict[str, str] = {
    "detach": ".detach()",
    "detach_": ".detach_()",
    "item": ".item()",
    "numpy": ".numpy()",
    "tolist": ".tolist()",
}
CUT_ATTRIBUTES: dict[str, str] = {"data": ".data"}
NO_GRAD_CONTEXTS = frozenset(
    {
        "torch.no_grad",
        "torch.inference_mode",
        "torch.autograd.no_grad",
        "torch.autograd.grad_mode.no_grad",
        "torch.autograd.inference_mode",
        "torch.autograd.grad_mode.inference_mode",
    }
)
GRAD_SWITCH = "torch.set_grad_enabled"  # a cut only with a literal False
# `torch.tensor(t)` copies a tensor into a new leaf (PyTorch warns: use t.clone().detach()).
TENSOR_REWRAPS = frozenset({"torch.tensor"})

# Results that carry no gradient whatever their input (indices, shapes, masks, new tensors).
NON_DIFFERENTIABLE_METHODS = frozenset(
    {
        "argmax",
        "argmin",
        "argsort",
        "size",
        "dim",
        "numel",
        "long",
        "int",
        "bool",
        "byte",
        "eq",
        "ne",
        "gt",
        "lt",
        "ge",
        "le",
        "nonzero",
        "sign",
        "isnan",
        "isinf",
        "isfinite",
        "any",
        "all",
        "new_zeros",
        "new_ones",
        "new_full",
        "new_empty",
        "new_tensor",
        "zero_",
        "get_device",
        "is_contiguous",
        "stride",
        "data_ptr",
        "bincount",
        "unique",
    }
)
NON_DIFFERENTIABLE_ATTRIBUTES = frozenset(
    {
        "shape",
        "dtype",
        "device",
        "ndim",
        "is_cuda",
        "requires_grad",
        "grad_fn",
        "is_leaf",
        "training",
        "layout",
    }
)
NON_DIFFERENTIABLE_FUNCTIONS = frozenset(
    {
        "torch." + name
        for name in (
            "argmax",
            "argmin",
            "argsort",
            "zeros",
            "ones",
            "empty",
            "full",
            "arange",
            "eye",
            "linspace",
            "logspace",
            "rand",
            "randn",
            "randint",
            "randperm",
            "zeros_like",
            "ones_like",
            "empty_like",
            "full_like",
            "rand_like",
            "randn_like",
            "randint_like",
            "bucketize",
            "searchsorted",
            "multinomial",
            "isnan",
            "isinf",
            "isfinite",
            "eq",
            "ne",
            "gt",
            "lt",
            "ge",
            "le",
            "nonzero",
            "bernoulli",
            "tril_indices",
            "triu_indices",
            "count_nonzero",
            "bincount",
            "unique",
            "numel",
        )
    }
)
BUILTINS_WITHOUT_GRADIENT = frozenset(
    {
        "int",
        "float",
        "len",
        "range",
        "bool",
        "round",
        "isinstance",
        "str",
        "print",
        "hasattr",
        "type",
    }
)
# Operators where a detached operand is the target the other side is pulled towards
# (`z.detach() - h`, `p * z.detach()`): the commitment-loss / BYOL stop-gradient.
TARGET_OPERATORS = (cst.Subtract, cst.Multiply, cst.Divide, cst.MatrixMultiply)
# Lower-case factories that return a trainable network (`self.backbone = build_backbone(cfg)`).
MODEL_FACTORY_FRAGMENTS = (
    "build",
    "create",
    "make",
    "model",
    "net",
    "encoder",
    "decoder",
    "backbone",
    "layer",
    "head",
    "block",
)
# Methods whose arguments are shapes or dimensions: only the receiver carries gradient.
SHAPE_ARGUMENT_METHODS = frozenset(
    {
        "view",
        "reshape",
        "expand",
        "repeat",
        "permute",
        "transpose",
        "flatten",
        "unflatten",
        "narrow",
        "split",
        "chunk",
        "roll",
        "unsqueeze",
        "squeeze",
        "to",
        "type",
        "cuda",
        "contiguous",
        "view_as",
        "expand_as",
        "reshape_as",
        "type_as",
        "repeat_interleave",
        "movedim",
        "flip",
        "tile",
        "unbind",
        "softmax",
        "log_softmax",
        "sum",
        "mean",
        "norm",
        "max",
        "min",
        "topk",
        "sort",
        "cumsum",
        "gather",
        "index_select",
        "masked_fill",
    }
)
SHAPE_KEYWORDS = frozenset(
    {
        "dim",
        "size",
        "shape",
        "dtype",
        "device",
        "out",
        "scale_factor",
        "mode",
        "keepdim",
        "index",
        "mask",
        "k",
        "dims",
        "align_corners",
        "reduction",
        "ignore_index",
    }
)

# Names of networks whose output is meant to be a constant (EMA / momentum / teacher /
# target networks in BYOL, MoCo, DINO, DQN, RLHF reference models) and of values that are
# targets rather than predictions: detaching them is the stop-gradient idiom.
STOP_GRADIENT_TOKENS = frozenset(
    {
        "target",
        "targets",
        "teacher",
        "ema",
        "momentum",
        "shadow",
        "frozen",
        "tgt",
        "ref",
        "reference",
        "old",
        "avg",
        "average",
        "label",
        "labels",
        "pseudo",
        "gt",
        "prior",
        "k",
    }
)
# Names of feature-extraction modules that hold no trainable parameters (spectrograms,
# augmentations, tokenisers): computing them under no_grad loses nothing.
FIXED_TRANSFORM_TOKENS = frozenset(
    {
        "stft",
        "istft",
        "mel",
        "melspec",
        "spectrogram",
        "spec",
        "fbank",
        "mfcc",
        "fft",
        "resample",
        "resampler",
        "augment",
        "augmentation",
        "aug",
        "augmenter",
        "tokenizer",
        "preprocess",
        "preprocessor",
    }
)
_INDEX_NAME = re.compile(
    r"(^|_)(idx|idxs|index|indices|indexes|ind|inds|ids|mask|masks|perm|order|argmax|"
    r"position|positions|pos|lengths?|counts?|shape|size|sizes|coords?|coordinates|grid)(_|\d|$)"
)


def is_stop_gradient_name(name: str) -> bool:
    """`self.target_net`, `teacher`, `encoder_k`, `ema_model`, `labels`: meant to be constant."""
    tokens = [t for t in re.split(r"[_.\d]+", name.lower()) if t]
    if "key" in tokens and ("encoder" in tokens or "enc" in tokens):
        return True
    return any(token in STOP_GRADIENT_TOKENS for token in tokens)


def is_fixed_transform_name(name: str) -> bool:
    """`self.stft`, `self.mel_spec`, `self.augment`: preprocessing modules without parameters."""
    tokens = [t for t in re.split(r"[_.\d]+", name.lower()) if t]
    return any(token in FIXED_TRANSFORM_TOKENS for token in tokens)


def is_index_name(name: str) -> bool:
    """A variable named like indices, masks or sizes: it carries no gradient to lose."""
    return _INDEX_NAME.search(name.lower()) is not None


def is_no_grad_context(index: TorchIndex, expr: cst.BaseExpression) -> bool:
    """`torch.no_grad()`, `torch.inference_mode()`, `torch.set_grad_enabled(False)`."""
    name = index.call_name(expr)
    if name in NO_GRAD_CONTEXTS:
        return True
    if name == GRAD_SWITCH and isinstance(expr, cst.Call) and expr.args:
        return is_name(expr.args[0].value, "False")
    return False
