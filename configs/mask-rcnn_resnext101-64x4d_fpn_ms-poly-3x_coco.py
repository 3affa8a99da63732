# Mask R-CNN, ResNeXt-101 (64x4d) FPN, mmdet's 3x multi-scale schedule on COCO 2017
# (see mask-rcnn_resnext101-32x4d_fpn_ms-poly-3x_coco.py).
_base_ = './mask-rcnn_resnext101-32x4d_fpn_ms-poly-3x_coco.py'

model = dict(
    backbone=dict(
        groups=64,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/resnext101_64x4d_imagenet_backbone.pth')))
