# ResNet-200 (1x64d) on ImageNet-1k. Xie et al., CVPR 2017, Table 4 (2x ResNet-101's complexity,
# ~15.6 GFLOPs): going deeper. Paper: 21.7% top-1 / 5.8% top-5 error (single 224 crop). ResNet
# counterpart: resnet101_1x64d_imagenet.py. Recipe: the paper's (./_base_/paper_imagenet.py). The
# paper's ResNet-200 row is the pre-activation ResNet-200 of He et al., "Identity Mappings in Deep
# Residual Networks" (2016), as trained in fb.resnet.torch (21.66 / 5.79). This config is the
# original post-activation bottleneck of the other rows, with 3, 24, 36, 3 blocks.
#   bash tools/dist_train.sh configs/paper/resnet200_1x64d_imagenet.py 8
_base_ = ['./_base_/paper_imagenet.py']

model = dict(backbone=dict(depth=200, groups=1, width_per_group=64))
