"""Cycle-exact model of the NPU core, one class per HDL component.

============================  =========================================================
HDL (``hdl/``)                 model (``sim_models/cycle/``)
============================  =========================================================
``core.NPUCore``               :class:`~.core.CycleNPU` (read arbiter, error latch,
                               deadlock detector, counters)
``units.FetchUnit`` ...        :mod:`.units`: ``FetchUnit``, ``LoadUnit``, ``ComputeUnit``,
                               ``StoreUnit``, ``TokenCounter``
``streamer.LineStreamer``      :class:`~.streamer.LineStreamer`
``array.SystolicArray``        :class:`~.array.ArrayTiming`
``memories._BankedMemory``     :class:`~.memories.BankArbiter`
``dma.RowReader/RowWriter``    :mod:`.dma`
``lib.fifo.SyncFIFOBuffered``  :class:`~.base.Fifo`; ``pipeline.DelayLine``: ``Delay``
(testbench DRAM, AxiRam)       :class:`~.dram.AxiRamTiming`
============================  =========================================================

Each is checked against its HDL component cycle by cycle in ``testbench/test_cycle_units.py``;
the whole core against the RTL in the cocotb regression.
"""

from .core import CycleNPU, CycleResult, ModelError
from .dram import AxiRamTiming
from .trace import first_divergence

__all__ = ["CycleNPU", "CycleResult", "ModelError", "AxiRamTiming", "first_divergence"]
