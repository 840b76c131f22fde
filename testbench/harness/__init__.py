"""The whole core under Verilator with a C++ testbench (DRAM, host), loaded with ctypes.

``Harness(cfg).run(image, program_addr, program_len)`` runs a program at Verilator speed and
answers with ``sim_models.results.NPUResult``; ``build.build_harness`` builds and caches the
library, ``pauses`` reproduces its seeded AXI pauses for the cycle model.
"""

from .api import ConfigMismatch, Harness, HarnessError, HarnessTimeout, config_of_library
from .build import HarnessBuildError, build_harness

__all__ = ["Harness", "HarnessError", "HarnessTimeout", "ConfigMismatch", "HarnessBuildError",
           "build_harness", "config_of_library"]
