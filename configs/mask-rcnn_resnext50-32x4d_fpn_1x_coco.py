# Mask R-CNN, ResNeXt-50 (32x4d) FPN, mmdet's 1x schedule on COCO 2017 (data/coco):
# 12 epochs, SGD lr 0.02 for 16 images (8 GPUs x 2), steps at epochs 8 and 11,
# 500-iteration linear warm-up; bbox and segm COCO AP (pycocotools).
_base_ = [
    './_base_/mask-rcnn_resnext_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]

model = dict(
    backbone=dict(
        depth=50,
        groups=32,
        width_per_group=4,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/resnext50_32x4d_imagenet_backbone.pth')))

# Stop on a NaN/inf loss before that state is checkpointed; draw augmentations and RoI samples
# from the training step, so that --resume repeats them; a rank whose peer died stops after
# the process-group timeout (seconds) instead of waiting forever.
custom_hooks = [dict(type='resnext_plugin.StopOnNonFiniteLossHook'),
                dict(type='resnext_plugin.ResumableRandomnessHook')]
env_cfg = dict(dist_cfg=dict(timeout=1800))

# mmdet's CocoDataset, with the annotation file validated (bad records named or counted) and
# every image file checked at start: resnext_plugin/engine/coco.py.
train_dataloader = dict(dataset=dict(type='resnext_plugin.CheckedCocoDataset'))
val_dataloader = dict(dataset=dict(type='resnext_plugin.CheckedCocoDataset'))
test_dataloader = val_dataloader
