"""Generate Verilog for one configuration of the systolic array.

    python -m hdl --rows 8 --cols 8 --dataflow ws -o build/knpu_array_ws_8x8.v
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
    parser.add_argument("-o", "--output", type=Path,
                        help="output file (default: build/<module name>.v)")
    args = parser.parse_args(argv)
    try:
        cfg = NPUConfig(rows=args.rows, cols=args.cols, dataflow=args.dataflow,
                        input_width=args.input_width, acc_width=args.acc_width)
    except ConfigError as err:
        parser.error(f"bad config: {err}")
    path = write_verilog(cfg, args.output or Path("build") / f"{cfg.name}.v")
    print(f"wrote {path} (module {cfg.name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
