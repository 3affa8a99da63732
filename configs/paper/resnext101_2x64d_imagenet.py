# ResNeXt-101 (2x64d) on ImageNet-1k. Xie et al., CVPR 2017, Table 4 (2x ResNet-101's complexity,
# ~15.6 GFLOPs): more groups. Paper: 20.7% top-1 / 5.5% top-5 error (single 224 crop). ResNet
# counterpart: resnet101_1x64d_imagenet.py. Recipe: the paper's (./_base_/paper_imagenet.py).
#   bash tools/dist_train.sh configs/paper/resnext101_2x64d_imagenet.py 8
_base_ = ['./_base_/paper_imagenet.py']

model = dict(backbone=dict(depth=101, groups=2, width_per_group=64))
