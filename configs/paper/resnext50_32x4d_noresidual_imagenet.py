# ResNeXt-50 (32x4d) without residual connections on ImageNet-1k. Xie et al., CVPR 2017, Sec. 5.1
# ("Residual connections"). Paper: 26.1% top-1 error without shortcuts, 22.2% with. With
# shortcuts: resnext50_32x4d_imagenet.py. Recipe: the paper's (./_base_/paper_imagenet.py).
# residual=False drops every shortcut, identity and projection, so each block computes relu(F(x));
# every BN starts at gamma = 1 (zero-initialised last BNs would silence the network without
# shortcuts).
#   bash tools/dist_train.sh configs/paper/resnext50_32x4d_noresidual_imagenet.py 8
_base_ = ['./_base_/paper_imagenet.py']

model = dict(backbone=dict(depth=50, groups=32, width_per_group=4, residual=False,
                            zero_init_residual=False))
