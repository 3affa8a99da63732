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

# Stop on a NaN/inf loss before that state is checkpointed; a rank whose peer died stops after
# the process-group timeout (seconds) instead of waiting forever.
custom_hooks = [dict(type='resnext_plugin.StopOnNonFiniteLossHook')]
env_cfg = dict(dist_cfg=dict(timeout=1800))
