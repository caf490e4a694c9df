"""PyTorch knowledge as data: which qualified names are activations, layers, optimizers...

Every name is in canonical qualified form (see `names.canonical`). Tensor methods cannot be
resolved statically, so they are listed by attribute name.
"""

from __future__ import annotations

from collections.abc import Iterable

NN = "torch.nn."
F = "torch.nn.functional."

# Saturating activations and the largest value their derivative reaches.
SATURATING_DERIVATIVE_BOUND: dict[str, float] = {
    "sigmoid": 0.25,
    "tanh": 1.0,
    "hardtanh": 1.0,
    "softsign": 1.0,
    "logsigmoid": 1.0,
    "hardsigmoid": 1.0 / 6.0,
}


def saturation_weight(activation: str) -> float:
    """How much one activation counts toward the depth of a saturating stack: 1 for those whose
    derivative peaks at 0.25 or below (sigmoid: 4 layers scale the gradient by at most 4e-3),
    1/2 for tanh-like ones, whose derivative peaks at 1 and shrinks the gradient only off-centre
    (LeNet-5's four tanh layers train fine; eight without normalization stall)."""
    return 1.0 if SATURATING_DERIVATIVE_BOUND.get(activation, 1.0) <= 0.25 else 0.5


def saturation_depth(activations: Iterable[str]) -> float:
    return sum(saturation_weight(activation) for activation in activations)


SATURATING_MODULES: dict[str, str] = {
    NN + "Sigmoid": "sigmoid",
    NN + "Tanh": "tanh",
    NN + "Hardtanh": "hardtanh",
    NN + "Softsign": "softsign",
    NN + "LogSigmoid": "logsigmoid",
    NN + "Hardsigmoid": "hardsigmoid",
}
SATURATING_FUNCTIONS: dict[str, str] = {
    "torch.sigmoid": "sigmoid",
    "torch.tanh": "tanh",
    "torch.special.expit": "sigmoid",
    F + "sigmoid": "sigmoid",
    F + "tanh": "tanh",
    F + "hardtanh": "hardtanh",
    F + "softsign": "softsign",
    F + "logsigmoid": "logsigmoid",
    F + "hardsigmoid": "hardsigmoid",
}
SATURATING_METHODS: dict[str, str] = {
    "sigmoid": "sigmoid",
    "sigmoid_": "sigmoid",
    "tanh": "tanh",
    "tanh_": "tanh",
}

RELU_FAMILY = frozenset(
    {"ReLU", "ReLU6", "LeakyReLU", "PReLU", "RReLU", "ELU", "SELU", "CELU", "GELU", "SiLU", "Mish"}
)
OTHER_ACTIVATIONS = frozenset(
    {
        "Softplus",
        "Hardswish",
        "Threshold",
        "GLU",
        "Softmax",
        "LogSoftmax",
        "Softmin",
        "Tanhshrink",
        "Softshrink",
        "Hardshrink",
        "Softmax2d",
    }
)
ACTIVATION_MODULES = frozenset(
    {NN + name for name in RELU_FAMILY | OTHER_ACTIVATIONS} | set(SATURATING_MODULES)
)
ACTIVATION_FUNCTIONS = frozenset(
    {F + name.lower() for name in RELU_FAMILY | OTHER_ACTIVATIONS}
    | {
        "torch.relu",
        "torch.relu_",
        "torch.selu",
        "torch.celu",
        "torch.softmax",
        "torch.prelu",
        F + "leaky_relu",
        F + "relu_",
        F + "elu_",
        F + "leaky_relu_",
        F + "log_softmax",
    }
    | set(SATURATING_FUNCTIONS)
)
ACTIVATION_METHODS = frozenset(
    {"relu", "relu_", "softmax", "log_softmax", "elu", "leaky_relu"} | set(SATURATING_METHODS)
)

NORM_MODULES = frozenset(
    NN + name
    for name in (
        "BatchNorm1d",
        "BatchNorm2d",
        "BatchNorm3d",
        "LazyBatchNorm1d",
        "LazyBatchNorm2d",
        "LazyBatchNorm3d",
        "SyncBatchNorm",
        "LayerNorm",
        "GroupNorm",
        "InstanceNorm1d",
        "InstanceNorm2d",
        "InstanceNorm3d",
        "LazyInstanceNorm1d",
        "LazyInstanceNorm2d",
        "LazyInstanceNorm3d",
        "RMSNorm",
        "LocalResponseNorm",
        "CrossMapLRN2d",
    )
)
NORM_FUNCTIONS = frozenset(
    {
        F + name
        for name in (
            "batch_norm",
            "layer_norm",
            "group_norm",
            "instance_norm",
            "rms_norm",
            "local_response_norm",
            "normalize",
        )
    }
    | {"torch.layer_norm", "torch.batch_norm", "torch.group_norm", "torch.rms_norm"}
)
# Wrappers that normalise the weight of the layer they wrap.
WEIGHT_NORM_WRAPPERS = frozenset(
    {
        "torch.nn.utils.weight_norm",
        "torch.nn.utils.spectral_norm",
        "torch.nn.utils.parametrizations.weight_norm",
        "torch.nn.utils.parametrizations.spectral_norm",
        "torch.nn.utils.parametrizations.orthogonal",
    }
)

DENSE_LAYERS = frozenset(
    NN + name
    for name in (
        "Linear",
        "LazyLinear",
        "Bilinear",
        "Conv1d",
        "Conv2d",
        "Conv3d",
        "ConvTranspose1d",
        "ConvTranspose2d",
        "ConvTranspose3d",
        "LazyConv1d",
        "LazyConv2d",
        "LazyConv3d",
        "LazyConvTranspose1d",
        "LazyConvTranspose2d",
        "LazyConvTranspose3d",
    )
)
RNN_LAYERS = frozenset(
    NN + name for name in ("RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell")
)
EMBEDDING_LAYERS = frozenset({NN + "Embedding", NN + "EmbeddingBag"})
WEIGHT_LAYERS = DENSE_LAYERS | RNN_LAYERS | EMBEDDING_LAYERS | {NN + "MultiheadAttention"}

# Layers that pass the signal through without weights worth counting (shape, regularisation).
TRANSPARENT_LAYERS = frozenset(
    NN + name
    for name in (
        "Dropout",
        "Dropout1d",
        "Dropout2d",
        "Dropout3d",
        "AlphaDropout",
        "Identity",
        "Flatten",
        "Unflatten",
        "MaxPool1d",
        "MaxPool2d",
        "MaxPool3d",
        "AvgPool1d",
        "AvgPool2d",
        "AvgPool3d",
        "AdaptiveAvgPool1d",
        "AdaptiveAvgPool2d",
        "AdaptiveAvgPool3d",
        "AdaptiveMaxPool1d",
        "AdaptiveMaxPool2d",
        "AdaptiveMaxPool3d",
        "Upsample",
        "PixelShuffle",
        "ZeroPad2d",
        "ConstantPad1d",
        "ConstantPad2d",
        "ReflectionPad2d",
        "ReplicationPad2d",
    )
)

SEQUENTIAL = NN + "Sequential"
MODULE_LIST = NN + "ModuleList"
MODULE_DICT = NN + "ModuleDict"
PARAMETER = NN + "Parameter"

MODULE_BASES = frozenset(
    {
        NN + "Module",
        SEQUENTIAL,
        "lightning.pytorch.LightningModule",
        "lightning.pytorch.core.LightningModule",
    }
)

# Optimizers: anything under torch.optim that is not a scheduler or helper, plus common extras.
OPTIMIZER_PREFIXES = ("torch.optim.",)
NOT_OPTIMIZERS = ("torch.optim.lr_scheduler", "torch.optim.swa_utils", "torch.optim.Optimizer")
EXTRA_OPTIMIZERS = frozenset(
    {
        "transformers.AdamW",
        "transformers.optimization.AdamW",
        "transformers.Adafactor",
        "transformers.optimization.Adafactor",
        "bitsandbytes.optim.AdamW8bit",
        "bitsandbytes.optim.Adam8bit",
        "apex.optimizers.FusedAdam",
        "apex.optimizers.FusedLAMB",
        "timm.optim.create_optimizer_v2",
        "timm.optim.create_optimizer",
    }
)

SCHEDULER_PREFIXES = (
    "torch.optim.lr_scheduler.",
    "timm.scheduler.",
    "transformers.get_",
    "transformers.optimization.get_",
    "diffusers.optimization.get_",
)

CLIP_FUNCTIONS = frozenset(
    {
        "torch.nn.utils.clip_grad_norm_",
        "torch.nn.utils.clip_grad_value_",
        "torch.nn.utils.clip_grad_norm",
        "torch.nn.utils.clip_grad.clip_grad_norm_",
        "torch.nn.utils.clip_grad.clip_grad_value_",
        "torch.nn.utils.get_total_norm",
    }
)
CLIP_METHODS = frozenset(
    {"clip_grad_norm_", "clip_grad_value_", "clip_gradients", "clip_grad_norm", "unscale_and_clip"}
)

INIT = "torch.nn.init."
CONSTANT_INIT_FUNCTIONS = frozenset(
    {
        INIT + "zeros_",
        INIT + "ones_",
        INIT + "constant_",
        INIT + "zeros",
        INIT + "constant",
        INIT + "ones",
    }
)
CONSTANT_INIT_METHODS = frozenset({"fill_", "zero_"})
CONSTANT_TENSOR_FACTORIES = frozenset(
    {
        "torch.zeros",
        "torch.ones",
        "torch.full",
        "torch.empty_like",
        "torch.zeros_like",
        "torch.ones_like",
        "torch.full_like",
    }
) - {"torch.empty_like"}

RANDOM_INIT_METHODS = frozenset(
    {
        "normal_",
        "uniform_",
        "random_",
        "trunc_normal_",
        "kaiming_normal_",
        "kaiming_uniform_",
        "xavier_normal_",
        "xavier_uniform_",
        "orthogonal_",
        "copy_",
    }
)

# -- training steps (gradlint.semantics.training) ------------------------------------------
# Calls that run backpropagation: `loss.backward()`, `accelerator.backward(loss)`,
# Lightning's `self.manual_backward(loss)`.
BACKWARD_METHODS = frozenset({"backward", "manual_backward"})
# Methods that return the same module (`Net().to(device)`), so the model is still `Net`.
MODEL_PASS_THROUGH_METHODS = frozenset(
    {
        "to",
        "cuda",
        "cpu",
        "float",
        "double",
        "half",
        "bfloat16",
        "train",
        "requires_grad_",
        "to_empty",
        "share_memory",
    }
)
# Clipping helpers beyond torch's own (timm's dispatcher, adaptive clipping).
MORE_CLIP_FUNCTIONS = frozenset(
    {
        "timm.utils.dispatch_clip_grad",
        "timm.utils.clip_grad.dispatch_clip_grad",
        "timm.utils.adaptive_clip_grad",
        "timm.utils.agc.adaptive_clip_grad",
        "torch.nn.utils.clip_grads_with_norm_",
    }
)
MORE_CLIP_METHODS = frozenset(
    {"dispatch_clip_grad", "adaptive_clip_grad", "clip_grad", "clip_grads", "clip_grads_with_norm_"}
)
# Optimizer factories: `create_optimizer_v2(model, "adamw", lr=...)` takes the model first and
# the learning rate only by keyword.
OPTIMIZER_FACTORIES = frozenset({"timm.optim.create_optimizer_v2", "timm.optim.create_optimizer"})
# Keyword arguments that switch clipping on somewhere else (Lightning Trainer, HF Trainer,
# timm's loss scaler, Keras-style optimizers).
CLIP_CONFIG_KEYWORDS = frozenset(
    {
        "gradient_clip_val",
        "gradient_clip_algorithm",
        "max_grad_norm",
        "clip_grad",
        "clip_grad_norm",
        "grad_clip",
        "clipnorm",
        "clipvalue",
        "clip_value",
    }
)
# Optimizers whose step size is not a learning-rate schedule's business (line search).
NO_SCHEDULE_OPTIMIZERS = frozenset({"torch.optim.LBFGS", "torch.optim.lbfgs.LBFGS"})
# Lower-case fragments of a called name that mean "this changes the learning rate over time".
SCHEDULE_CALL_FRAGMENTS = (
    "schedul",
    "adjust_learning_rate",
    "adjust_lr",
    "lr_decay",
    "decay_lr",
    "update_lr",
    "set_lr",
    "reducelronplateau",
    "lr_warmup",
    "warmup_lr",
    "cosine_lr",
    "poly_lr",
    "lr_sched",
    "swalr",
)

# Functional dropouts and the default of their third parameter, `training`: True for the
# dropouts (they ignore `model.eval()` unless given `training=self.training`), False for the
# alpha dropouts (they never drop unless told to).
FUNCTIONAL_DROPOUT = {
    F + "dropout": True,
    F + "dropout1d": True,
    F + "dropout2d": True,
    F + "dropout3d": True,
    F + "alpha_dropout": False,
    F + "feature_alpha_dropout": False,
}
