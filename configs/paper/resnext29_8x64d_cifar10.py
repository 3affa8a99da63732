# ResNeXt-29 (8x64d) on CIFAR-10. Xie et al., CVPR 2017, Table 7: 3.65% test error, 34.4M params.
# Recipe: the paper's (./_base_/paper_cifar10.py).
#   bash tools/dist_train.sh configs/paper/resnext29_8x64d_cifar10.py 8
_base_ = ['./_base_/paper_cifar10.py']

model = dict(backbone=dict(groups=8, width_per_group=64))
