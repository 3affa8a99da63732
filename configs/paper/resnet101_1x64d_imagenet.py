# ResNet-101 (1x64d) on ImageNet-1k. Xie et al., CVPR 2017, Table 3 (same complexity: 101-layer,
# ~7.8 GFLOPs, ~44M params); Table 4's 1x reference. Paper: 22.0% top-1 error; 6.0% top-5 (Table
# 4) (single 224 crop). Recipe: the paper's (./_base_/paper_imagenet.py).
#   bash tools/dist_train.sh configs/paper/resnet101_1x64d_imagenet.py 8
_base_ = ['./_base_/paper_imagenet.py']

model = dict(backbone=dict(depth=101, groups=1, width_per_group=64))
