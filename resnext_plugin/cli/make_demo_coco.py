"""Write the demo COCO instance-segmentation data set (see resnext_plugin.demo_data.coco).

Example:
    python tools/make_demo_coco.py --out data/demo_coco --seed 0
"""
from __future__ import annotations

import argparse

from resnext_plugin.cli.generate import run_generator
from resnext_plugin.demo_data.coco import DemoCocoSpec, make_demo_coco


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
    summary, seconds = run_generator("make_demo_coco", make_demo_coco, args.out, spec)
    if summary is None:
        return 2
    for split in ("train", "val"):
        info = summary[split]
        print(f"{split}: {info['images']} images, {info['annotations']} instances -> "
              f"{info['ann_file']}")
    print(f"classes: {', '.join(summary['classes'])} ({seconds:.1f}s)")
    return 0
