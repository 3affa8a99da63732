# ResNeXt-50 (32x4d) on ImageNet-1k, the paper's recipe (8 GPUs x 32 images, 100 epochs).
# Paper (Table 3): 22.2% top-1 error; mmpretrain's model zoo: 77.90% top-1, 25.03M params.
_base_ = ['./_base_/resnext_imagenet.py']

model = dict(backbone=dict(depth=50, groups=32, width_per_group=4))
