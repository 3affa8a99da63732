# ResNeXt-101 (32x4d) on ImageNet-1k. Xie et al., CVPR 2017, Table 3 (same complexity: 101-layer,
# ~7.8 GFLOPs, ~44M params); Table 4's 1x reference. Paper: 21.2% top-1 error; 5.6% top-5 (Table
# 4) (single 224 crop). ResNet counterpart: resnet101_1x64d_imagenet.py. Recipe: the paper's
# (./_base_/paper_imagenet.py).
#   bash tools/dist_train.sh configs/paper/resnext101_32x4d_imagenet.py 8
_base_ = ['./_base_/paper_imagenet.py']

model = dict(backbone=dict(depth=101, groups=32, width_per_group=4))
