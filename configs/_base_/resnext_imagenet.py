# ResNeXt on ImageNet-1k with the paper's recipe (Xie et al., CVPR 2017, Sec. 4):
# SGD, lr 0.1 per 256 images, momentum 0.9, weight decay 1e-4, 100 epochs with lr / 10 at
# epochs 30, 60 and 90; batch 32 per GPU x 8 GPUs; RandomResizedCrop 224 + horizontal flip;
# evaluation: short side 256, center crop 224, top-1 / top-5.
# The backbone is the plugin's `resnext_plugin.ResNeXt`; everything else is mmpretrain's.
# The model files (resnext50_32x4d_imagenet.py, ...) set depth, groups and width per group.
default_scope = 'mmpretrain'
# resnext_plugin registers the backbone; resnext_plugin.upstream_fixes fixes mmengine's
# checkpoint loading on torch>=2.6, makes checkpoint writes atomic and mmcv's RoIAlign safe for
# channels_last features (see its docstring); both are imported on every rank.
custom_imports = dict(imports=['resnext_plugin', 'resnext_plugin.upstream_fixes'],
                      allow_failed_imports=False)

# ---------------------------------------------------------------- model
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='resnext_plugin.ResNeXt',
        depth=50,
        groups=32,
        width_per_group=4,
        num_stages=4,
        out_indices=(3, ),
        style='pytorch'),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=2048,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5)))

# ---------------------------------------------------------------- data
# mmpretrain's ImageNet layout; `CheckedImageNet` stops at once, naming the path, the layout
# and the demo command, when it is missing. `StrictLoadImageFromFile` names a corrupt file.
data_root = 'data/imagenet'
dataset_type = 'resnext_plugin.CheckedImageNet'
data_preprocessor = dict(
    num_classes=1000,
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)

train_pipeline = [
    dict(type='resnext_plugin.StrictLoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='resnext_plugin.StrictLoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=32,
    num_workers=5,
    dataset=dict(type=dataset_type, data_root=data_root, split='train',
                 pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    batch_size=32,
    num_workers=5,
    dataset=dict(type=dataset_type, data_root=data_root, split='val',
                 pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

# Test-time augmentation (tools/test.py --tta): mmpretrain's AverageClsScoreTTA averages the class
# scores of the test view and its horizontal flip. tta_pipeline is the test pipeline above with
# the flip before packing; a config that changes test_pipeline sets its own tta_pipeline too.
tta_model = dict(type='AverageClsScoreTTA')
tta_pipeline = [
    *test_pipeline[:-1],
    dict(type='TestTimeAug',
         transforms=[[dict(type='RandomFlip', prob=1., direction='horizontal'),
                      dict(type='RandomFlip', prob=0., direction='horizontal')],
                     [dict(type='PackInputs')]]),
]

# ---------------------------------------------------------------- schedule
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4))
param_scheduler = dict(
    type='MultiStepLR', by_epoch=True, milestones=[30, 60, 90], gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=1)
val_cfg = dict()
test_cfg = dict()
# lr 0.1 is for 256 images per step (8 x 32); `tools/train.py --auto-scale-lr` rescales it
# linearly for another total batch.
auto_scale_lr = dict(base_batch_size=256)

# ---------------------------------------------------------------- runtime
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=100),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3,
                    save_best='auto'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='VisualizationHook', enable=False))
# training_curves.png (loss, top-1/top-5) in the work dir; stop on a NaN/inf loss before that
# state is checkpointed; draw augmentations from the training step, so that --resume repeats them.
custom_hooks = [dict(type='resnext_plugin.TrainingCurvesHook'),
                dict(type='resnext_plugin.StopOnNonFiniteLossHook'),
                dict(type='resnext_plugin.ResumableRandomnessHook')]

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # nccl on GPUs; tools/train.py switches to gloo when there is no GPU.
    # timeout (s): a rank whose peer died stops with an error instead of waiting forever.
    dist_cfg=dict(backend='nccl', timeout=1800))
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=None, deterministic=False)
