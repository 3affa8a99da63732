# ResNeXt-50 (32x4d) on ImageNet-1k. Xie et al., CVPR 2017, Table 3 (same complexity: 50-layer,
# ~4.1 GFLOPs, ~25M params). Paper: 22.2% top-1 error; Table 1: 25.0M params, 4.2 GFLOPs (single
# 224 crop). ResNet counterpart: resnet50_1x64d_imagenet.py. Recipe: the paper's
# (./_base_/paper_imagenet.py). Same model as configs/resnext50_32x4d_imagenet.py, with the
# paper's BN initialisation.
#   bash tools/dist_train.sh configs/paper/resnext50_32x4d_imagenet.py 8
_base_ = ['./_base_/paper_imagenet.py']

model = dict(backbone=dict(depth=50, groups=32, width_per_group=4))
