"""Low-bit co-design for a 40 nm RRAM CIM macro (Weinstock, Tan, Li, Yu, ORSS 2023).

The parts, one file each: :mod:`.straight_through` (the training form and its recipe),
:mod:`.batchnorm_folding` (trained model -> integer network), :mod:`.integer_network`,
:mod:`.macro` (the crossbar macro simulator and its cost), :mod:`.row_rename_reorder`,
:mod:`.reproduction` (the run and its report).

LeNet-5 with 1-bit weights (+-1, straight-through sign) and 2-bit activations (0..3,
straight-through rounding), batch norm folded into integer thresholds after training, so
that the whole network is integer: every layer is ``a = sum_k [y >= t_k]`` on the integer
partial sums ``y = sum_i x_i w_i`` (x in 0..3, w in +-1) and the last layer's per-class
affine is digital.

The macro (:class:`MacroConfig`): a ``rows`` x ``cols`` compute array, a weight is one cell
(``w = +1`` -> the table's highest level, ``-1`` -> its lowest), inputs are streamed bit by
bit, at most ``max_rows`` rows are driven per read and a ``adc_bits`` ADC counts the
low-resistance cells among them (7 rows, 3 bits: the count 0..7 is exact), so the partial
sum of a read is ``2 * count - n_driven``. Sparsity-aware input control drives only rows
whose input bit is 1: zeros cost no read cycles. With the device table's programming
spread and read noise the count can be off by one: that is the noise impact.

Row rename (:func:`rename_rows`): rows of a binary layer that are identical or sign
complements are stored once; their inputs are added (or subtracted) digitally before the
array, a logical -> physical row map with signs. Row reorder (:func:`reorder_rows`): a
permutation of the rows (inputs follow) chosen greedily so that consecutive groups of
``max_rows`` rows hold a balanced number of low-resistance cells in every column, which
evens out the noise variance per read (the error probability of a read grows faster than
its variance).
"""

from .batchnorm_folding import integerize
from .integer_network import IntegerLeNet5, IntLayer
from .macro import Macro, MacroConfig
from .reproduction import PAPER, reproduce_lowbit
from .row_rename_reorder import REORDER_STRATEGIES, rename_rows, reorder_rows, tie_rows
from .straight_through import BinaryLeNet5, quantize_input, train_lowbit

__all__ = [
    "MacroConfig",
    "BinaryLeNet5",
    "IntegerLeNet5",
    "IntLayer",
    "train_lowbit",
    "integerize",
    "Macro",
    "rename_rows",
    "reorder_rows",
    "REORDER_STRATEGIES",
    "tie_rows",
    "quantize_input",
    "reproduce_lowbit",
    "PAPER",
]
