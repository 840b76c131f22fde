"""Generate Verilog for one configuration of the systolic array (or the whole core).

    python -m hdl --rows 8 --cols 8 --dataflow ws -o build/knpu_array_ws_8x8.v
    python -m hdl --core --rows 16 --cols 16 --bus-bits 128
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .config import DATAFLOWS, ConfigError, NPUConfig
from .verilog import write_verilog


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hdl", description=__doc__.splitlines()[0])
    defaults = NPUConfig()
    parser.add_argument("--rows", type=int, default=defaults.rows)
    parser.add_argument("--cols", type=int, default=defaults.cols)
    parser.add_argument("--dataflow", choices=DATAFLOWS, default=defaults.dataflow)
    parser.add_argument("--input-width", type=int, default=defaults.input_width)
    parser.add_argument("--acc-width", type=int, default=defaults.acc_width)
    parser.add_argument("--core", action="store_true",
                        help="the whole NPU core (AXI ports) instead of the bare array")
    parser.add_argument("--bus-bits", type=int, default=defaults.bus_bits)
    parser.add_argument("--sp-lines", type=int, default=defaults.sp_lines)
    parser.add_argument("--acc-lines", type=int, default=defaults.acc_lines)
    parser.add_argument("-o", "--output", type=Path,
                        help="output file (default: build/<module name>.v)")
    args = parser.parse_args(argv)
    try:
        cfg = NPUConfig(rows=args.rows, cols=args.cols, dataflow=args.dataflow,
                        input_width=args.input_width, acc_width=args.acc_width,
                        bus_bits=args.bus_bits, sp_lines=args.sp_lines,
                        acc_lines=args.acc_lines)
        name = cfg.core_name if args.core else cfg.name
        path = write_verilog(cfg, args.output or Path("build") / f"{name}.v", core=args.core)
    except ConfigError as err:
        parser.error(f"bad config: {err}")
    print(f"wrote {path} (module {name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
