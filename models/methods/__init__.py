"""Published CIM co-design methods reproduced on rramsim's layers, tables and cost model.

- :mod:`.lowbit` (a package, one file per part): 1-bit weights / 2-bit activations LeNet-5 on a 7-rows-per-read macro
  with a 3-bit ADC, row rename and row reorder (Weinstock et al., ORSS 2023).
- :mod:`.forms`: polarized fragments by ADMM, sign-per-fragment mapping, input
  zero-skipping (Yuan et al., ISCA 2021).
- :mod:`.basisn`: global basis kernels written once, quantized coefficients applied
  digitally (Eldebiky et al., 2024).
- :mod:`.report`: the markdown reports with the papers' numbers beside ours.

Imports only ``rramsim.devices`` and ``rramsim.models`` (plus torch/numpy).
"""
