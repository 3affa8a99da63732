# ResNeXt-152 (32x4d) on ImageNet-1k, the paper's recipe (8 GPUs x 32 images, 100 epochs).
# mmpretrain's model zoo: 78.88% top-1, 59.95M params.
_base_ = ['./_base_/resnext_imagenet.py']

model = dict(backbone=dict(depth=152, groups=32, width_per_group=4))
