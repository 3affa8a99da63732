# ResNeXt-101 (64x4d) on ImageNet-1k, the paper's recipe (8 GPUs x 32 images, 100 epochs).
# Paper (Table 4): 20.4% top-1 / 5.3% top-5 error; 83.46M params (torchvision).
_base_ = ['./_base_/resnext_imagenet.py']

model = dict(backbone=dict(depth=101, groups=64, width_per_group=4))
