"""The gate-level cross-check (scripts/gate_power.py) on a 2x2 array: the synthesized
netlist computes the GEMM right and in the RTL's cycles, every cell pin gets its simulated
activity, and the energy model's MAC band sits where the gates say it should."""

import pytest

from hdl.config import NPUConfig


@pytest.mark.rtl
@pytest.mark.synth
@pytest.mark.xdist_group("array_activity")   # shares build/activity and a VCD
def test_gate_level_energy_brackets_the_model():
    from scripts.gate_power import gate_power

    r = gate_power(NPUConfig(rows=2, cols=2, dataflow="ws"), ["relu_cnn", "zeros"],
                   gemm=(8, 8, 8), seed=5)
    runs = r["profiles"]
    for name, x in runs.items():
        print(name, {k: round(v, 2) for k, v in x["gate_pj_per_mac"].items()},
              [round(v, 2) for v in x["model_mac_pj"]], round(x["mac_activity"], 3))
        # The gates ran as many cycles as the RTL, and nothing was left to guesswork.
        assert x["cycles"] == x["rtl_cycles"]
        assert x["pins_annotated"] == x["pins"] > 1000 and not x["unmatched"]
    comb = {n: x["gate_pj_per_mac"]["combinational"] for n, x in runs.items()}
    # Data activity is real at gate level too: zeros < ReLU data < uniform random.
    assert comb["zeros"] < 0.1 * comb["uniform"] < comb["relu_cnn"] < comb["uniform"]
    # No gate-level result beats the model's arithmetic (a multiply and an add per MAC),
    # and the model is not off by an order of magnitude (measured: gates 2-4x the band).
    lo, hi = runs["uniform"]["model_mac_pj"]
    assert lo <= comb["uniform"] <= 10 * hi
    # Flip-flops cost energy every cycle, data or not (clock pins): visible with zeros.
    assert runs["zeros"]["gate_pj_per_mac"]["sequential"] > 0.5 * \
        runs["uniform"]["gate_pj_per_mac"]["sequential"]
