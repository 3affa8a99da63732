# ResNet-50 (1x64d) without residual connections on ImageNet-1k. Xie et al., CVPR 2017, Sec. 5.1
# ("Residual connections"). Paper: 31.2% top-1 error without shortcuts, 23.9% with. With
# shortcuts: resnet50_1x64d_imagenet.py. Recipe: the paper's (./_base_/paper_imagenet.py).
# residual=False drops every shortcut, identity and projection, so each block computes relu(F(x));
# every BN starts at gamma = 1 (zero-initialised last BNs would silence the network without
# shortcuts).
#   bash tools/dist_train.sh configs/paper/resnet50_1x64d_noresidual_imagenet.py 8
_base_ = ['./_base_/paper_imagenet.py']

model = dict(backbone=dict(depth=50, groups=1, width_per_group=64, residual=False,
                            zero_init_residual=False))
