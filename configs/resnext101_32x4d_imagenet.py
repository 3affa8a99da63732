# ResNeXt-101 (32x4d) on ImageNet-1k, the paper's recipe (8 GPUs x 32 images, 100 epochs).
# Paper (Table 3): 21.2% top-1 error; mmpretrain's model zoo: 78.61% top-1, 44.18M params.
_base_ = ['./_base_/resnext_imagenet.py']

model = dict(backbone=dict(depth=101, groups=32, width_per_group=4))
