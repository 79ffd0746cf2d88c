"""Recurrent layers on crossbars: LSTM and GRU whose gate matrices are AnalogLinear layers.

Every layer and direction has two crossbar layers: ``ih_l{k}[_reverse]`` holds torch's
``weight_ih_l{k}`` (input -> all gates, with ``bias_ih``) and ``hh_l{k}[_reverse]`` holds
``weight_hh_l{k}`` (hidden state -> all gates, with ``bias_hh``). The input products of a
whole sequence are one crossbar pass (all time steps at once, they do not depend on the
state); the hidden-state product is one crossbar read per time step, each with its own
read noise. The gate arithmetic (sum of the two products, sigmoid/tanh, the elementwise
products that update the cell and hidden states) is digital; :meth:`digital_work` counts it.

The equations are torch's (``nn.LSTM``: i, f, g, o gates, ``c' = f c + i g``,
``h' = o tanh(c')``; ``nn.GRU``: r, z, n gates, ``n = tanh(W_in x + b_in + r (W_hn h +
b_hn))``, ``h' = (1 - z) n + z h``), with ``num_layers``, ``bidirectional``,
``batch_first``, ``bias``, dropout between layers (training only), initial states,
unbatched inputs and ``PackedSequence`` inputs (each sequence stops at its own length; the
reverse direction starts at its own last element). ``proj_size`` (LSTM with projections)
is refused.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rramsim.devices import DeviceTable
from rramsim.models.attention import AnalogBlock, _float_linear, analog_linear, derived_seeds
from rramsim.models.config import CrossbarConfig
from rramsim.models.layers import AnalogLinear

__all__ = ["AnalogLSTM", "AnalogGRU", "CONVERTERS"]


class _AnalogRNN(AnalogBlock):
    """The recurrence shared by :class:`AnalogLSTM` and :class:`AnalogGRU`."""

    TORCH: type = nn.RNNBase
    GATES = 1

    def __init__(
        self,
        rnn: nn.RNNBase,
        table: DeviceTable,
        config: CrossbarConfig | None = None,
        seed: int = 0,
        program: bool = True,
    ) -> None:
        super().__init__()
        kind = self.TORCH.__name__
        if not isinstance(rnn, self.TORCH):
            raise TypeError(f"{type(self).__name__} needs an nn.{kind}, got {type(rnn).__name__}")
        if getattr(rnn, "proj_size", 0):
            raise ValueError(
                f"{type(self).__name__}: nn.{kind} with proj_size={rnn.proj_size} is not supported "
                "(the projected LSTM); use proj_size=0 or leave this layer digital"
            )
        self.input_size, self.hidden_size = rnn.input_size, rnn.hidden_size
        self.num_layers, self.bias = rnn.num_layers, bool(rnn.bias)
        self.batch_first, self.dropout = bool(rnn.batch_first), float(rnn.dropout)
        self.bidirectional = bool(rnn.bidirectional)
        seeds = iter(derived_seeds(seed, 2 * self.num_layers * self.directions))
        for suffix in self._suffixes():
            for part in ("ih", "hh"):
                w = getattr(rnn, f"weight_{part}{suffix}")
                b = getattr(rnn, f"bias_{part}{suffix}") if self.bias else None
                self.add_module(f"{part}{suffix}", analog_linear(w, b, table, config, next(seeds), program))
            getattr(self, f"ih{suffix}").batch_dim = 1  # reads the whole sequence [T, B, *] at once
        self.train(rnn.training)

    @classmethod
    def from_module(
        cls,
        module: nn.RNNBase,
        table: DeviceTable,
        config: CrossbarConfig | None = None,
        seed: int = 0,
        program: bool = True,
    ):
        return cls(module, table, config, seed=seed, program=program)

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    def _suffixes(self) -> list[str]:
        return [f"_l{k}" + ("_reverse" if d else "") for k in range(self.num_layers) for d in range(self.directions)]

    def to_digital(self) -> nn.RNNBase:
        """The plain torch module with the float weights."""
        w = self.ih_l0.weight
        rnn = self.TORCH(
            self.input_size,
            self.hidden_size,
            num_layers=self.num_layers,
            bias=self.bias,
            batch_first=self.batch_first,
            dropout=self.dropout,
            bidirectional=self.bidirectional,
            device=w.device,
            dtype=w.dtype,
        )
        with torch.no_grad():
            for suffix in self._suffixes():
                for part in ("ih", "hh"):
                    lin = _float_linear(getattr(self, f"{part}{suffix}"))
                    getattr(rnn, f"weight_{part}{suffix}").copy_(lin.weight)
                    if self.bias:
                        getattr(rnn, f"bias_{part}{suffix}").copy_(lin.bias)
        return rnn.train(self.training)

    # ------------------------------------------------------------------ forward
    @torch.compiler.disable
    def forward(self, input, hx=None):
        """The recurrence runs eagerly, also inside a ``torch.compile``d model: every time
        step reads the crossbars (outside compiled graphs anyway, for fresh read noise), and
        tracing the Python loop around them would compile again for every new batch size
        and sequence length (dynamo's recompile limit) for no gain."""
        packed = isinstance(input, PackedSequence)
        lengths = None
        if packed:
            x, lengths = pad_packed_sequence(input)  # [T, B, *] in the caller's order
            batched = True
        else:
            x = input
            if x.dim() not in (2, 3):
                raise ValueError(
                    f"{type(self).__name__} expects a 3-D batch or a 2-D unbatched sequence, got shape {tuple(x.shape)}"
                )
            batched = x.dim() == 3
            x = x.unsqueeze(1) if not batched else (x.transpose(0, 1) if self.batch_first else x)
        if x.shape[-1] != self.input_size:
            raise ValueError(
                f"{type(self).__name__}: input has {x.shape[-1]} features, expected input_size={self.input_size}"
            )
        T, B = x.shape[0], x.shape[1]
        states = self._initial_states(hx, B, batched, x)
        mask = None
        if lengths is not None:
            mask = (torch.arange(T)[:, None] < lengths[None, :]).to(x.device)[..., None]  # [T, B, 1]
        layer_in = x
        finals: list[list[torch.Tensor]] = [[] for _ in states]
        D = self.directions
        for k in range(self.num_layers):
            outs = []
            for d in range(D):
                suffix = f"_l{k}" + ("_reverse" if d else "")
                ih, hh = getattr(self, "ih" + suffix), getattr(self, "hh" + suffix)
                gx = ih(layer_in)  # [T, B, G*H]: one pass for all steps
                state = [s[k * D + d] for s in states]
                out = [None] * T
                for t in reversed(range(T)) if d else range(T):
                    new = self._cell(gx[t], hh(state[0]), state)
                    if mask is None:
                        state = new
                    else:
                        m = mask[t]
                        state = [torch.where(m, n, s) for n, s in zip(new, state)]
                    out[t] = state[0] if mask is None else state[0] * m
                outs.append(torch.stack(out))
                for f, s in zip(finals, state):
                    f.append(s)
            layer_in = outs[0] if D == 1 else torch.cat(outs, dim=-1)
            if self.training and self.dropout > 0 and k < self.num_layers - 1:
                layer_in = F.dropout(layer_in, p=self.dropout)
        steps = float(lengths.float().mean()) if lengths is not None else T
        for suffix in self._suffixes():  # the state's crossbar read once per step: T vectors a sample
            hh = getattr(self, "hh" + suffix)
            if isinstance(hh, AnalogLinear) and not hh.record_usage:  # (recording: the engine adds them up)
                hh.usage["vectors_per_sample"] = T
        self._digital = {
            name: int(round(steps * self.num_layers * D * n * self.hidden_size))
            for name, n in self.DIGITAL_PER_STEP.items()
        }
        final = [torch.stack(f) for f in finals]  # [L*D, B, H]
        if packed:
            order = input.sorted_indices
            sorted_out = layer_in if order is None else layer_in.index_select(1, order)
            sorted_len = lengths if order is None else lengths.index_select(0, order.cpu())
            data = pack_padded_sequence(sorted_out, sorted_len, enforce_sorted=True).data
            output = PackedSequence(data, input.batch_sizes, input.sorted_indices, input.unsorted_indices)
        elif not batched:
            output, final = layer_in.squeeze(1), [f.squeeze(1) for f in final]
        else:
            output = layer_in.transpose(0, 1) if self.batch_first else layer_in
        return output, self._pack_state(final)

    def _initial_states(self, hx, B: int, batched: bool, x: torch.Tensor) -> list[torch.Tensor]:
        n = self.num_layers * self.directions
        given = self._unpack_state(hx)
        states = []
        for name, h in zip(self.STATE_NAMES, given):
            if h is None:
                states.append(x.new_zeros(n, B, self.hidden_size))
                continue
            expect = (n, B, self.hidden_size) if batched else (n, self.hidden_size)
            if tuple(h.shape) != expect:
                raise ValueError(
                    f"{type(self).__name__}: initial {name} must have shape {expect} "
                    f"(num_layers*directions, batch, hidden_size), got {tuple(h.shape)}"
                )
            states.append(h if batched else h.unsqueeze(1))
        return states

    def extra_repr(self) -> str:
        return (
            f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, bias={self.bias}, "
            f"batch_first={self.batch_first}, dropout={self.dropout}, bidirectional={self.bidirectional}"
        )


class AnalogLSTM(_AnalogRNN):
    """``nn.LSTM`` with ``W_ih`` and ``W_hh`` of every layer and direction on crossbars.

    Digital work per sample (:meth:`digital_work`), over all layers, directions and steps:
    ``gate_add_elements`` (the two crossbar products summed), ``nonlinearity_elements``
    (3 sigmoids and 2 tanh per hidden unit) and ``elementwise_products`` (f c, i g, o tanh c).
    """

    TORCH = nn.LSTM
    GATES = 4
    STATE_NAMES = ("h_0", "c_0")
    DIGITAL_PER_STEP = {"gate_add_elements": 4, "nonlinearity_elements": 5, "elementwise_products": 3}

    def _unpack_state(self, hx):
        if hx is None:
            return (None, None)
        if not (isinstance(hx, (tuple, list)) and len(hx) == 2):
            raise ValueError("AnalogLSTM: hx must be a tuple (h_0, c_0)")
        return tuple(hx)

    def _pack_state(self, final):
        return (final[0], final[1])

    def _cell(self, gx: torch.Tensor, gh: torch.Tensor, state: list[torch.Tensor]) -> list[torch.Tensor]:
        i, f, g, o = (gx + gh).chunk(4, dim=-1)
        c = torch.sigmoid(f) * state[1] + torch.sigmoid(i) * torch.tanh(g)
        return [torch.sigmoid(o) * torch.tanh(c), c]


class AnalogGRU(_AnalogRNN):
    """``nn.GRU`` with ``W_ih`` and ``W_hh`` of every layer and direction on crossbars.

    Digital work per sample (:meth:`digital_work`): ``gate_add_elements``,
    ``nonlinearity_elements`` (2 sigmoids and 1 tanh per hidden unit) and
    ``elementwise_products`` (r (W_hn h + b_hn), (1 - z) n, z h).
    """

    TORCH = nn.GRU
    GATES = 3
    STATE_NAMES = ("h_0",)
    DIGITAL_PER_STEP = {"gate_add_elements": 4, "nonlinearity_elements": 3, "elementwise_products": 3}

    def _unpack_state(self, hx):
        if isinstance(hx, (tuple, list)):
            raise ValueError("AnalogGRU: hx must be one tensor h_0, not a tuple")
        return (hx,)

    def _pack_state(self, final):
        return final[0]

    def _cell(self, gx: torch.Tensor, gh: torch.Tensor, state: list[torch.Tensor]) -> list[torch.Tensor]:
        xr, xz, xn = gx.chunk(3, dim=-1)
        hr, hz, hn = gh.chunk(3, dim=-1)
        r = torch.sigmoid(xr + hr)
        z = torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        return [(1 - z) * n + z * state[0]]


#: torch type -> converter factory(module, table, config, name), registered by rramsim.models
CONVERTERS = {nn.LSTM: AnalogLSTM.converter, nn.GRU: AnalogGRU.converter}
