# ResNeXt-101 (2x40d) on ImageNet-1k. Xie et al., CVPR 2017, Table 3 (same complexity: 101-layer,
# ~7.8 GFLOPs, ~44M params). Paper: 21.7% top-1 error (single 224 crop). ResNet counterpart:
# resnet101_1x64d_imagenet.py. Recipe: the paper's (./_base_/paper_imagenet.py).
#   bash tools/dist_train.sh configs/paper/resnext101_2x40d_imagenet.py 8
_base_ = ['./_base_/paper_imagenet.py']

model = dict(backbone=dict(depth=101, groups=2, width_per_group=40))
