# Mask R-CNN, ResNeXt-101 (32x4d) FPN, 1x schedule on COCO 2017.
# mmdet's model zoo: 41.9 box AP / 37.5 mask AP with the converted Facebook weights.
_base_ = './mask-rcnn_resnext50-32x4d_fpn_1x_coco.py'

model = dict(
    backbone=dict(
        depth=101,
        groups=32,
        width_per_group=4,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/resnext101_32x4d_imagenet_backbone.pth')))
