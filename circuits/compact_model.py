"""The behavioural filament-gap RRAM model as an ngspice subcircuit (no Verilog-A needed).

Physics (see ``rramsim.devices.params.CompactModel`` for the equations and parameters):
the gap ``g`` (nm) is the voltage of node ``x`` on a 1 F capacitor, so ``C dx/dt`` is the
gap velocity in nm/s. The resistor from ``x`` to a source at ``g_max`` is both the tiny DC
path that makes ``.op`` well posed (1/r_ret = 1e6 Ohm) and the slow relaxation of the gap
that shows up as retention loss. Arguments of ``exp``/``sinh`` are clamped so Newton steps
cannot overflow, and the windows ``max(0, 1 - exp(-distance/w))`` stop the state exactly
at its bounds.

Randomness enters through two control ports that the benches drive with seeded draws
(so the same seed gives the same table, bit for bit): ``c`` carries a unit Gaussian per
pulse period that multiplies the gap velocity by ``exp(c2c * V(c))`` (cycle-to-cycle
spread), and ``n`` a unit white-noise waveform that multiplies the read current by
``1 + noise * exp((g - 1 nm)/(2 g0)) * V(n)`` (read noise with sigma ~ G^-1/2). Tie a
port to ground (node 0) to switch its effect off.

With ``relaxation=True`` (only then: without it the text is exactly the plain model's) the
subcircuit takes three more instance parameters, :data:`RELAX_PARAMS`: ``relax`` (nm, the
cell's draw delta of ``rramsim.devices.params.Relaxation``), ``relax_t0`` (s, the end of
programming) and ``relax_tau`` (s). The gap is then ``V(x) + V(r)``, where node ``r``
carries the post-programming relaxation ``relax * ln(1 + (time - relax_t0)/relax_tau)``
(0 before ``relax_t0``) and ``x`` the part the pulses and ``r_ret`` move; every use of the
gap (read current, windows, ``r_ret``) takes the sum. The law is written out, not
integrated: a current ``relax/(time - relax_t0 + relax_tau)`` into the capacitor is the same
physics, but ngspice's time-step control let it overshoot the law by 20-30% (measured, tau
1 us: steps doubling from 70 ns after the start), while the closed form is exact at every
time point. Defaults (relax = 0) leave the gap as without it.
"""

from __future__ import annotations

from rramsim.circuits.render import check_identifier, render

#: Instance parameters the subcircuit accepts, beyond the compact-model ones.
INSTANCE_PARAMS = ("x0", "c2c")
#: Instance parameters of the post-programming relaxation (``rram_subckt(..., relaxation=True)``).
RELAX_PARAMS = ("relax", "relax_t0", "relax_tau")

_RRAM = """\
.subckt {{name}} te be c n params: i0={i0} g0={g0} v0={v0} g_min={g_min} g_max={g_max}
+ nu_set={nu_set} vs_set={vs_set} nu_reset={nu_reset} vs_reset={vs_reset} window={window}
+ r_ret={r_ret} noise={noise} x0={x0} c2c={c2c}
* state: gap in nm on node x (1 F), relaxing towards g_max through 1/r_ret
Cx x 0 1 ic={{x0}}
Vgm gm 0 dc {{g_max}}
Rx x gm {{1/r_ret}}
Bx 0 x I=exp(max(min({{c2c}}*V(c), 5), -5)) * (
+ -{{nu_set}}*sinh(min(max(V(te,be), 0)/{{vs_set}}, 40))*max(0, 1-exp(-max(V(x)-{{g_min}}, -1)/{{window}}))
+ +{{nu_reset}}*sinh(min(max(-V(te,be), 0)/{{vs_reset}}, 40))*max(0, 1-exp(-max({{g_max}}-V(x), -1)/{{window}})) )
Bi te be I={{i0}}*exp(-min(max(V(x), {{g_min}}), {{g_max}})/{{g0}})*sinh(max(min(V(te,be)/{{v0}}, 30), -30))
+ *(1 + {{noise}}*exp((min(max(V(x), {{g_min}}), {{g_max}})-1)/(2*{{g0}}))*V(n))
.ends {{name}}
"""

# the relaxation variant: one more line of instance parameters, the relaxation node r, and the
# gap read as V(x)+V(r) wherever the plain model reads V(x) (the r_ret resistor becomes a source)
_RELAX_PARAMS_LINE = "+ relax=0 relax_t0=0 relax_tau=1e-6\n"
_RELAX_SOURCE = (
    "* post-programming relaxation of the gap: relax*ln(1 + (time - relax_t0)/relax_tau) after relax_t0\n"
    "Br r 0 V={relax}*ln(1+max(time-{relax_t0}, 0)/{relax_tau})\n"
)
_RX = "Rx x gm {1/r_ret}\n"
_RX_RELAX = "Brx x gm I=(V(x)+V(r)-V(gm))*{r_ret}\n"


_NMOS = """\
.model {{name}} nmos level=1 vto={vto} kp={kp} lambda={lam}
"""


def rram_subckt(model_params: dict, name: str = "rram", relaxation: bool = False) -> str:
    """The subcircuit text of the behavioural model with ``model_params`` as defaults.

    ``model_params`` are ``CompactModel.params()`` (numbers only); the instance defaults
    are x0 = g_max (a fresh device in HRS) and no cycle-to-cycle spread. ``relaxation``
    adds the post-programming relaxation source and its instance parameters
    (:data:`RELAX_PARAMS`, default: no relaxation); without it the text is unchanged.
    """
    params = dict(model_params)
    params.setdefault("x0", params.get("g_max", 1.7))
    params.setdefault("c2c", 0.0)
    text = render(_RRAM, params)
    if relaxation:
        head, rest = text.split("\n+ r_ret=", 1)
        first, body = rest.split("\n", 1)
        body, ends = body.rsplit(".ends", 1)
        if _RX not in body:
            raise AssertionError("compact model template changed: the r_ret resistor line is not where expected")
        body = body.replace("V(x)", "(V(x)+V(r))").replace(_RX, _RX_RELAX)
        text = f"{head}\n+ r_ret={first}\n{_RELAX_PARAMS_LINE}{body}{_RELAX_SOURCE}.ends{ends}"
    return text.replace("{name}", check_identifier(name, "subcircuit name"))


def nmos_model(name: str = "nacc", vto: float = 0.45, kp: float = 2e-4, lam: float = 0.02) -> str:
    """A level-1 NMOS for the access transistor of a 1T1R cell."""
    return render(_NMOS, {"vto": vto, "kp": kp, "lam": lam}).replace("{name}", check_identifier(name, "model name"))
