"""Formal properties of knpu components, written in Amaranth and proved with SymbiYosys.

Each property is a wrapper :class:`~amaranth.lib.wiring.Component`-free ``Elaboratable`` in
:mod:`testbench.formal.properties` that instantiates one HDL component (unchanged), drives
its inputs from free signals (``AnyConst``/``AnySeq`` are inputs of the wrapper: SymbiYosys
treats unconstrained top-level inputs as arbitrary each cycle), constrains them with
``Assume`` where the component's contract says so, and states ``Assert``/``Cover``.
:func:`testbench.formal.runner.prove` writes RTLIL, a ``.sby`` file, runs ``yowasp-sby`` and
reads the verdict.
"""
