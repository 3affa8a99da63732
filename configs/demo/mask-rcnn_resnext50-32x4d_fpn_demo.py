# Demo transfer: the ResNeXt-50 (32x4d) Mask R-CNN of
# configs/mask-rcnn_resnext50-32x4d_fpn_1x_coco.py (frozen_stages=1, norm_eval, FPN, the same heads)
# on the generated demo COCO set (python tools/make_demo_coco.py -> data/demo_coco: 96x96 JPEGs,
# 4 shape classes), with the backbone initialised from the demo ImageNet pretraining, converted by
#   python tools/convert_checkpoint.py <pretraining ckpt> \
#       work_dirs/demo/checkpoints/resnext50_32x4d_demo_imagenet_backbone.pth \
#       --from plugin --to backbone
# What changes for a few minutes on a CPU: data root and classes, image size, batch and schedule,
# smaller anchors for the small images, and fewer sampled proposals and RoIs (an image holds at
# most 3 objects). `make demo` (tools/demo_pipeline.py) runs the whole chain.
_base_ = '../mask-rcnn_resnext50-32x4d_fpn_1x_coco.py'

data_root = 'data/demo_coco/'
classes = ('circle', 'square', 'triangle', 'star')
# Drawing colours, chosen to contrast with each class's own hue family.
metainfo = dict(classes=classes, palette=[(255, 255, 255), (255, 0, 255), (0, 0, 255),
                                          (255, 128, 0)])
image_scale = (96, 96)
batch_size = 4
max_epochs = 4

model = dict(
    backbone=dict(
        init_cfg=dict(
            type='Pretrained',
            checkpoint='work_dirs/demo/checkpoints/resnext50_32x4d_demo_imagenet_backbone.pth')),
    rpn_head=dict(anchor_generator=dict(scales=[6])),
    roi_head=dict(
        bbox_head=dict(num_classes=len(classes)),
        mask_head=dict(num_classes=len(classes))),
    train_cfg=dict(
        rpn=dict(sampler=dict(num=128)),
        rpn_proposal=dict(nms_pre=500, max_per_img=200),
        rcnn=dict(sampler=dict(num=32))),
    test_cfg=dict(
        rpn=dict(nms_pre=300, max_per_img=100),
        rcnn=dict(max_per_img=10)))

train_pipeline = [
    dict(type='resnext_plugin.StrictLoadImageFromFile'),  # a corrupt file is named
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    # mmdet's loader, as in the full config: mmdet's DetInferencer finds the loader it replaces
    # by the name 'LoadImageFromFile' and refuses a pipeline without one.
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_train2017.json',
        data_prefix=dict(img='train2017/'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=batch_size,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_val2017.json',
        data_prefix=dict(img='val2017/'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator

# The 1x schedule's SGD; the linear rule gives 0.02 * 4 / 16 = 0.005 for batch 4, doubled because
# the demo has minutes, not days (0.02 diverged in our runs; warm-up and clipping keep it stable).
optim_wrapper = dict(optimizer=dict(lr=0.01), clip_grad=dict(max_norm=35, norm_type=2))
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    # The last epoch at lr / 10: it is where box and mask precision (AP75) come from.
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True,
         milestones=[max_epochs - 1], gamma=0.1),
]
auto_scale_lr = dict(enable=False, base_batch_size=batch_size)
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
log_processor = dict(window_size=10)
env_cfg = dict(dist_cfg=dict(backend='gloo'))
