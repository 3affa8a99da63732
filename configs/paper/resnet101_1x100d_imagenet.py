# ResNet-101, wider (1x100d) on ImageNet-1k. Xie et al., CVPR 2017, Table 4 (2x ResNet-101's
# complexity, ~15.6 GFLOPs): going wider. Paper: 21.3% top-1 / 5.7% top-5 error (single 224 crop).
# ResNet counterpart: resnet101_1x64d_imagenet.py. Recipe: the paper's
# (./_base_/paper_imagenet.py). One group of width d = 100 at the first stage (200, 400, 800 in
# the next); given explicitly, the width is honoured with groups=1.
#   bash tools/dist_train.sh configs/paper/resnet101_1x100d_imagenet.py 8
_base_ = ['./_base_/paper_imagenet.py']

model = dict(backbone=dict(depth=101, groups=1, width_per_group=100))
