# The paper's ImageNet-1k recipe for every configs/paper/*_imagenet.py experiment (Xie et al.,
# CVPR 2017, Sec. 4): configs/_base_/resnext_imagenet.py (8 GPUs x 32 images, SGD lr 0.1,
# momentum 0.9, weight decay 1e-4, 100 epochs with lr / 10 at 30, 60 and 90, random-size crop
# 224 + flip; evaluation: short side 256, centre crop 224), plus one change:
# - every BatchNorm starts at gamma = 1. The paper's code (fb.resnet.torch) initialises all BN
#   weights to 1; zero-initialising the last BN of each block (mmpretrain's default, our
#   backbone's default) came later (Goyal et al., 2017) and would change the experiment.
_base_ = ['../../_base_/resnext_imagenet.py']

model = dict(backbone=dict(zero_init_residual=False))
