# ResNeXt-29 (16x64d) on CIFAR-100. Xie et al., CVPR 2017, Table 7: 17.31% test error, 68.1M params.
# Recipe: the paper's (./_base_/paper_cifar100.py).
#   bash tools/dist_train.sh configs/paper/resnext29_16x64d_cifar100.py 8
_base_ = ['./_base_/paper_cifar100.py']

model = dict(backbone=dict(groups=16, width_per_group=64))
