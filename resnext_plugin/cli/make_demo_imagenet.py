"""Write the demo ImageNet-layout data set (see resnext_plugin.demo_data.imagenet).

Example:
    python tools/make_demo_imagenet.py --out data/demo_imagenet --seed 0
"""
from __future__ import annotations

import argparse

from resnext_plugin.cli.generate import run_generator
from resnext_plugin.demo_data.imagenet import DemoImageNetSpec, make_demo_imagenet


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = DemoImageNetSpec()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="data/demo_imagenet",
                        help="output root (mmpretrain ImageNet layout)")
    parser.add_argument("--num-classes", type=int, default=defaults.num_classes)
    parser.add_argument("--train-per-class", type=int, default=defaults.train_per_class)
    parser.add_argument("--val-per-class", type=int, default=defaults.val_per_class)
    parser.add_argument("--image-size", type=int, default=defaults.image_size)
    parser.add_argument("--noise", type=float, default=defaults.noise,
                        help="per-pixel noise (grey levels): the difficulty")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    spec = DemoImageNetSpec(num_classes=args.num_classes, train_per_class=args.train_per_class,
                            val_per_class=args.val_per_class, image_size=args.image_size,
                            noise=args.noise, seed=args.seed)
    summary, seconds = run_generator("make_demo_imagenet", make_demo_imagenet, args.out, spec)
    if summary is None:
        return 2
    for split in ("train", "val"):
        info = summary[split]
        print(f"{split}: {info['images']} images in {info['img_dir']} -> {info['ann_file']}")
    print(f"{len(summary['classes'])} classes: {', '.join(summary['classes'])} "
          f"({seconds:.1f}s)")
    return 0
