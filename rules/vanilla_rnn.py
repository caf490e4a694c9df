from __future__ import annotations

import libcst as cst

from gradlint import Invalid, Rule, Severity, Valid
from gradlint.semantics import recurrent
from gradlint.semantics.nodes import findall

VANILLA_RNNS = frozenset({"torch.nn.RNN", "torch.nn.RNNCell"})


class VanillaRnn(Rule):
    """
    ## What it does
    Flags `nn.RNN` and `nn.RNNCell` (tanh or relu), the vanilla Elman recurrence, unless the
    file shows that sequences are short: every literal sequence length it names
    (`seq_len`, `max_len`, `window`, `n_steps`, `block_size`, ...) is at most 20, or the
    layer is stepped in a loop over `range(<20 or fewer>)`.

    ## Why is this bad?
    A vanilla RNN computes `h_t = f(W_hh h_{t-1} + W_ih x_t)`. Backpropagation through time
    multiplies the gradient by `W_hhᵀ·diag(f'(·))` once per step, so after T steps it is
    scaled roughly by the T-th power of that matrix's norm: below 1 it vanishes (the model
    cannot learn dependencies more than a few dozen steps apart), above 1 it explodes.
    LSTM and GRU add an additive cell/state path controlled by gates, whose derivative
    stays near 1 when the forget/update gate is open, so the gradient survives long spans.

    ## Known limitations
    Sequence lengths are read only from literals in this file; a length from a config or
    the data is unknown, and then the layer is reported. The threshold is the
    `max-short-sequence` option. A vanilla RNN built in one branch of an `if` whose other
    branch builds an LSTM/GRU is a user's choice of cell type and is not reported.
    """

    CODE = "GL112"
    NEEDS = ("RNN",)  # nn.RNN or nn.RNNCell
    SEVERITY = Severity.INFO
    PREVIEW = True  # below 9 in 10 right on labelled real code (benchmarks/quality)
    MESSAGE = (
        "`nn.{layer}` is a vanilla RNN; backprop through time multiplies the gradient by "
        "W_hh·diag(f') at every step, so over long sequences it vanishes or explodes"
    )
    HINT = (
        "Use nn.LSTM or nn.GRU (nn.LSTMCell / nn.GRUCell): their gated, additive state path "
        "carries the gradient across many time steps"
    )
    OPTIONS = {"max-short-sequence": 20}

    VALID = [
        Valid("""
            from torch import nn
            class CharModel(nn.Module):
                def __init__(self, vocab, hidden):
                    super().__init__()
                    self.embed = nn.Embedding(vocab, hidden)
                    self.rnn = nn.LSTM(hidden, hidden, num_layers=2, batch_first=True)
                    self.head = nn.Linear(hidden, vocab)
        """),
        # short, known sequences: a 10-step window
        Valid("""
            import torch.nn as nn
            SEQ_LEN = 10
            class Forecaster(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.rnn = nn.RNN(1, 32, batch_first=True)
                    self.fc = nn.Linear(32, 1)
        """),
        # a cell unrolled over a literal 5 steps
        Valid("""
            import torch
            from torch import nn
            class Decoder(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.cell = nn.RNNCell(16, 16)
                def forward(self, h):
                    outs = []
                    for t in range(5):
                        h = self.cell(torch.zeros_like(h), h)
                        outs.append(h)
                    return torch.stack(outs)
        """),
        # GRU cell and packed sequences from torch.nn.utils.rnn
        Valid("""
            from torch import nn
            from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
            class Encoder(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.gru = nn.GRU(64, 128, bidirectional=True)
                    self.cell = nn.GRUCell(64, 64)
                def forward(self, x, lengths):
                    out, h = self.gru(pack_padded_sequence(x, lengths))
                    return pad_packed_sequence(out)[0]
        """),
        # a local class that happens to be called RNN
        Valid("""
            from torch import nn
            class RNN(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.lstm = nn.LSTM(8, 8)
            model = RNN()
        """),
        # an unrelated library's RNN
        Valid("""
            from keras.layers import SimpleRNN
            from mylib import nn
            layer = nn.RNN(8, 8)
        """),
        # a user-selectable cell type (pytorch/examples word_language_model)
        Valid("""
            import torch.nn as nn
            class RNNModel(nn.Module):
                def __init__(self, rnn_type, ninp, nhid, nlayers):
                    super().__init__()
                    if rnn_type in ["LSTM", "GRU"]:
                        self.rnn = getattr(nn, rnn_type)(ninp, nhid, nlayers)
                    elif rnn_type == "GRU_ONLY":
                        self.rnn = nn.GRU(ninp, nhid, nlayers)
                    else:
                        nonlinearity = {"RNN_TANH": "tanh", "RNN_RELU": "relu"}[rnn_type]
                        self.rnn = nn.RNN(ninp, nhid, nlayers, nonlinearity=nonlinearity)
        """),
        # the sequence length is a keyword argument literal
        Valid("""
            from torch import nn
            class Toy(nn.Module):
                def __init__(self, hidden=32, seq_len=8):
                    super().__init__()
                    self.rnn = nn.RNN(4, hidden, nonlinearity="relu")
        """),
        # the vanilla cell is one entry of a table of cell types the user picks from
        Valid("""
            from torch import nn
            class Encoder(nn.Module):
                def __init__(self, cell="lstm", dim=128):
                    super().__init__()
                    self.rnn = {
                        "lstm": nn.LSTM(dim, dim, batch_first=True),
                        "gru": nn.GRU(dim, dim, batch_first=True),
                        "rnn": nn.RNN(dim, dim, batch_first=True),
                    }[cell]
        """),
        # a toy that learns "hello" -> "ohlol": the whole sequence is written out, five steps
        Valid("""
            import torch
            x_data = [[1, 0, 2, 2, 3]]
            inputs = torch.LongTensor(x_data)
            rnn = torch.nn.RNN(input_size=10, hidden_size=8, batch_first=True)
        """),
    ]
    INVALID = [
        Invalid(
            """
            from torch import nn
            class CharModel(nn.Module):
                def __init__(self, vocab, hidden):
                    super().__init__()
                    self.embed = nn.Embedding(vocab, hidden)
                    self.rnn = nn.RNN(hidden, hidden, num_layers=2, batch_first=True)
                    self.head = nn.Linear(hidden, vocab)
        """,
            line=6,
            message="`nn.RNN`",
        ),
        # a long window
        Invalid(
            """
            import torch.nn as nn
            SEQ_LEN = 200
            class Forecaster(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.rnn = nn.RNN(1, 32, batch_first=True)
        """,
            line=6,
        ),
        # a cell unrolled over an unknown number of steps
        Invalid(
            """
            import torch
            from torch.nn import RNNCell
            class Decoder(torch.nn.Module):
                def __init__(self):
                    super().__init__()
                    self.cell = RNNCell(16, 16, nonlinearity="tanh")
                def forward(self, xs, h):
                    for x in xs:
                        h = self.cell(x, h)
                    return h
        """,
            line=6,
            message="nn.RNNCell",
        ),
        # built outside a class, one short and one long length: the longest decides
        Invalid(
            """
            import torch
            max_len = 512
            window = 16
            rnn = torch.nn.RNN(input_size=8, hidden_size=8)
        """,
            line=4,
        ),
    ]

    def visit_Module(self, node: cst.Module) -> None:
        limit = self.options["max-short-sequence"]
        length = recurrent.recurrence_length(self.index, limit)
        if length.all_short(limit):
            return  # every sequence length this file names is short
        targets = recurrent.rnn_targets(self.index)
        for call in findall(node, cst.Call):
            name = self.index.call_name(call)
            if name not in VANILLA_RNNS:
                continue
            if recurrent.chosen_among_gated(self.index, call):
                continue  # one option beside LSTM/GRU (`if rnn_type == "RNN_TANH": ...`)
            if length.stepped_briefly(targets.get(call)):  # type: ignore[call-overload]
                continue  # stepped over a literal handful of time steps
            self.report(call, layer=name.rsplit(".", 1)[-1])
