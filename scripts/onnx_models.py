"""Write the ResNet-18 / MobileNetV2 topologies (``sim_models.onnx_frontend.zoo``, seeded
random weights) as float ONNX files, for ``make run MODEL=...`` (which quantizes a float
model with onnxruntime first).

    python scripts/onnx_models.py --net resnet18 --width 1.0 --resolution 224 --out build/onnx/resnet18.onnx
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sim_models.onnx_frontend import zoo  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--net", choices=("resnet18", "mobilenet_v2"), required=True)
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--resolution", type=int, default=224)
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    build = zoo.resnet18 if args.net == "resnet18" else zoo.mobilenet_v2
    model = build(args.width, args.resolution, args.classes, args.seed)
    import onnx
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
