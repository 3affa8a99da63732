# ResNet-50 (1x64d) on ImageNet-1k. Xie et al., CVPR 2017, Table 3 (same complexity: 50-layer,
# ~4.1 GFLOPs, ~25M params). Paper: 23.9% top-1 error; Table 1: 25.5M params, 4.1 GFLOPs (single
# 224 crop). Recipe: the paper's (./_base_/paper_imagenet.py).
#   bash tools/dist_train.sh configs/paper/resnet50_1x64d_imagenet.py 8
_base_ = ['./_base_/paper_imagenet.py']

model = dict(backbone=dict(depth=50, groups=1, width_per_group=64))
