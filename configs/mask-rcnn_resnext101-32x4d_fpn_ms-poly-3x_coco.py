# Mask R-CNN, ResNeXt-101 (32x4d) FPN, mmdet's 3x multi-scale schedule on COCO 2017:
# polygon masks kept as polygons (poly2mask=False), short side drawn from [640, 800],
# the training set repeated 3 times for 12 "epochs" (36 COCO epochs), steps at 9 and 11.
# mmdet's model zoo: 43.6 box AP / 39.0 mask AP with the converted Facebook weights.
_base_ = [
    './_base_/mask-rcnn_resnext_fpn.py',
    'mmdet::common/ms-poly_3x_coco-instance.py',
]

model = dict(
    backbone=dict(
        depth=101,
        groups=32,
        width_per_group=4,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/resnext101_32x4d_imagenet_backbone.pth')))

# Stop on a NaN/inf loss before that state is checkpointed; draw augmentations and RoI samples
# from the training step, so that --resume repeats them; a rank whose peer died stops after
# the process-group timeout (seconds) instead of waiting forever.
custom_hooks = [dict(type='resnext_plugin.StopOnNonFiniteLossHook'),
                dict(type='resnext_plugin.ResumableRandomnessHook')]
env_cfg = dict(dist_cfg=dict(timeout=1800))

# mmdet's CocoDataset, with the annotation file validated (bad records named or counted) and
# every image file checked at start: resnext_plugin/engine/coco.py.
train_dataloader = dict(
    dataset=dict(dataset=dict(type='resnext_plugin.CheckedCocoDataset')))
val_dataloader = dict(dataset=dict(type='resnext_plugin.CheckedCocoDataset'))
test_dataloader = val_dataloader
