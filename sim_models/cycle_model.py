"""The cycle-exact model of the core; it lives in :mod:`sim_models.cycle`, one class per HDL
component.  This module keeps the old import path."""

from .cycle import AxiRamTiming, CycleNPU, CycleResult, ModelError, first_divergence

__all__ = ["CycleNPU", "AxiRamTiming", "CycleResult", "ModelError", "first_divergence"]
