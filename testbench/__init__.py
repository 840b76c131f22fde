"""knpu's test benches, simulator builds and back ends.

Scripts and notebooks use this small public API (``from testbench import run_cocotb``),
never the modules behind it, so the benches can change without breaking them:

=================================  ======================================================
``BUILD``, ``REPO``                the build folder (``KNPU_BUILD``) and the repository
``verilog_for(cfg, core=False)``   generated Verilog for a configuration, cached
``build(sim, cfg, ...)``           a simulator model, cached per configuration
``run_cocotb(sim, cfg, module)``   run a cocotb module's tests against a configuration
``fresh_report(name)``             an empty report path under ``build/reports``
``stimulus_seed(default)``         the run's seed (``KNPU_SEED`` replays one)
``run(cfg, image, ...)``           a program on a back end by name (``functional``,
                                   ``model``, ``verilator``, ``icarus``,
                                   ``cocotb-verilator``): :mod:`testbench.backends`
``BACKENDS``, ``BackendError``    those names; bad input to a back end
``Harness``, ``HarnessError``      the C++ Verilator harness (:mod:`testbench.harness`)
``build_harness(cfg, ...)``        its cached build; ``recorded_build_seconds(lib)``
``run_network``, ``scaled``        whole networks layer by layer on the harness
``demo_layers``, ``regression_layers``  the layers ``make sim`` and the regression run
=================================  ======================================================

Public modules beyond these names: :mod:`testbench.fuzz` (random legal programs),
:mod:`testbench.fuzz_run` (campaigns across back ends, shrinking, reproducers),
:mod:`testbench.fuzz_bins` (functional coverage bins).  Names load on first use, so
``import testbench`` stays cheap.
"""

from importlib import import_module

__all__ = ["BUILD", "REPO", "verilog_for", "build", "run_cocotb", "fresh_report",
           "stimulus_seed", "run", "BACKENDS", "BackendError", "Harness", "HarnessError",
           "build_harness", "recorded_build_seconds", "run_network", "scaled", "demo_layers",
           "regression_layers"]

_WHERE = {"BUILD": "rtl", "REPO": "rtl", "verilog_for": "rtl", "build": "rtl",
          "run_cocotb": "rtl", "fresh_report": "rtl", "stimulus_seed": "stimulus",
          "run": "backends", "BACKENDS": "backends", "BackendError": "backends",
          "Harness": "harness", "HarnessError": "harness", "build_harness": "harness.build",
          "recorded_build_seconds": "harness.build", "run_network": "harness.networks",
          "scaled": "harness.networks", "demo_layers": "core_layers",
          "regression_layers": "core_layers"}


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'testbench' has no attribute {name!r}")
    return getattr(import_module(f".{_WHERE[name]}", __name__), name)
