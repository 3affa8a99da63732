"""Write a small CIFAR-10 or CIFAR-100 stand-in in the official format
(see resnext_plugin.demo_data.cifar); read it with verify_checksums=False.

Example:
    python tools/make_demo_cifar.py --out data/demo_cifar10 --dataset cifar10
    python tools/train.py configs/paper/resnext29_8x64d_cifar10.py --cfg-options \
        train_dataloader.dataset.data_root=data/demo_cifar10 \
        train_dataloader.dataset.verify_checksums=False train_dataloader.dataset.download=False \
        val_dataloader.dataset.data_root=data/demo_cifar10 \
        val_dataloader.dataset.verify_checksums=False val_dataloader.dataset.download=False
"""
from __future__ import annotations

import argparse

from resnext_plugin.cli.generate import run_generator
from resnext_plugin.demo_data.cifar import DemoCifarSpec, make_demo_cifar


def main(argv: list[str] | None = None) -> int:
    defaults = DemoCifarSpec()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="data/demo_cifar10", help="output data root")
    parser.add_argument("--dataset", choices=("cifar10", "cifar100"), default=defaults.dataset)
    parser.add_argument("--train-per-class", type=int, default=defaults.train_per_class)
    parser.add_argument("--test-per-class", type=int, default=defaults.test_per_class)
    parser.add_argument("--noise", type=float, default=defaults.noise)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    args = parser.parse_args(argv)
    spec = DemoCifarSpec(dataset=args.dataset, train_per_class=args.train_per_class,
                         test_per_class=args.test_per_class, noise=args.noise, seed=args.seed)
    summary, seconds = run_generator("make_demo_cifar", make_demo_cifar, args.out, spec)
    if summary is None:
        return 2
    print(f"{summary['train']} training and {summary['test']} test images in {summary['folder']}: "
          f"{', '.join(summary['files'])}")
    return 0
