# ResNeXt-50 (4x24d) on ImageNet-1k. Xie et al., CVPR 2017, Table 3 (same complexity: 50-layer,
# ~4.1 GFLOPs, ~25M params). Paper: 22.6% top-1 error (single 224 crop). ResNet counterpart:
# resnet50_1x64d_imagenet.py. Recipe: the paper's (./_base_/paper_imagenet.py).
#   bash tools/dist_train.sh configs/paper/resnext50_4x24d_imagenet.py 8
_base_ = ['./_base_/paper_imagenet.py']

model = dict(backbone=dict(depth=50, groups=4, width_per_group=24))
