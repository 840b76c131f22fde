"""knpu gateware (Amaranth).  ``python -m hdl --help`` generates Verilog."""

from .config import ConfigError, NPUConfig

__all__ = ["NPUConfig", "ConfigError"]
