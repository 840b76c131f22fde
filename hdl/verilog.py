"""Verilog generation: one deterministic file per configuration, module named after it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from amaranth.back import verilog

from .array import SystolicArray
from .config import NPUConfig

__all__ = ["array_verilog", "core_verilog", "write_verilog"]


def array_verilog(cfg: NPUConfig) -> str:
    return verilog.convert(SystolicArray(cfg), name=cfg.name, emit_src=False)


def core_verilog(cfg: NPUConfig) -> str:
    from .core import NPUCore
    return verilog.convert(NPUCore(cfg), name=cfg.core_name, emit_src=False)


def write_verilog(cfg: NPUConfig, path, core: bool = False) -> Path:
    """Write atomically (temp file + rename) so a failed or concurrent run never leaves a
    truncated file behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = core_verilog(cfg) if core else array_verilog(cfg)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    return path
