"""Write the demo COCO instance-segmentation data set (see resnext_plugin.demo_data.coco).

Example:
    python tools/make_demo_coco.py --out data/demo_coco --seed 0
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from resnext_plugin.demo_data.coco import DemoCocoSpec, make_demo_coco  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = DemoCocoSpec()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="data/demo_coco", help="output root (COCO layout)")
    parser.add_argument("--num-train", type=int, default=defaults.num_train)
    parser.add_argument("--num-val", type=int, default=defaults.num_val)
    parser.add_argument("--image-size", type=int, default=defaults.image_size)
    parser.add_argument("--max-objects", type=int, default=defaults.max_objects)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    spec = DemoCocoSpec(num_train=args.num_train, num_val=args.num_val,
                        image_size=args.image_size, max_objects=args.max_objects, seed=args.seed)
    start = time.perf_counter()
    try:
        summary = make_demo_coco(args.out, spec)
    except ValueError as err:
        print(f"make_demo_coco: error: {err}", file=sys.stderr)
        return 2
    for split in ("train", "val"):
        info = summary[split]
        print(f"{split}: {info['images']} images, {info['annotations']} instances -> "
              f"{info['ann_file']}")
    print(f"classes: {', '.join(summary['classes'])} ({time.perf_counter() - start:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
