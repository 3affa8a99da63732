# Mask R-CNN, ResNeXt-101 (64x4d) FPN, 1x schedule on COCO 2017.
# mmdet's model zoo: 42.8 box AP / 38.4 mask AP with the converted Facebook weights.
_base_ = './mask-rcnn_resnext50-32x4d_fpn_1x_coco.py'

model = dict(
    backbone=dict(
        depth=101,
        groups=64,
        width_per_group=4,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/resnext101_64x4d_imagenet_backbone.pth')))
