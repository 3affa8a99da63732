# ResNeXt-50 (32x4d) on ImageNet-1k with a modern training recipe: torchvision's "new recipe",
# which gave torchvision's resnext50_32x4d IMAGENET1K_V2 weights 81.198% top-1 / 95.340% top-5
# (V1, the paper-style recipe: 77.618%), rebuilt from mmpretrain 1.2.0 and mmengine components.
# This is a recipe, not a result: no model was trained with it in this project (600 epochs on
# 8 GPUs); expect torchvision's accuracy only after a full run.
# Sources: pytorch.org/blog/how-to-train-state-of-the-art-models-using-torchvision-latest-primitives
# and torchvision's weight metadata (recipe: github.com/pytorch/vision/issues/3995#new-recipe):
#   torchrun --nproc_per_node=8 train.py --model resnext50_32x4d --batch-size 128 --lr 0.5 \
#     --lr-scheduler cosineannealinglr --lr-warmup-epochs 5 --lr-warmup-method linear \
#     --auto-augment ta_wide --epochs 600 --random-erase 0.1 --weight-decay 0.00002 \
#     --norm-weight-decay 0.0 --label-smoothing 0.1 --mixup-alpha 0.2 --cutmix-alpha 1.0 \
#     --train-crop-size 176 --model-ema --val-resize-size 232 --ra-sampler --ra-reps 4
# (plus the script's defaults: SGD momentum 0.9, warm-up from 0.01 x lr, EMA every 32 steps with
# decay 0.99998, bilinear resizing, evaluation crop 224). How each maps here:
# - 8 GPUs x 128 images, SGD lr 0.5 (per 1024 images; --auto-scale-lr rescales), momentum 0.9,
#   weight decay 2e-5, none on the norm layers' weights and biases (paramwise norm_decay_mult=0).
# - lr: LinearLR from 0.01 x lr over epochs 0-5, then CosineAnnealingLR to 0 at epoch 600, both
#   stepped per epoch as torchvision's schedulers are.
# - TrivialAugmentWide: torchvision's own transform (mmpretrain registers every torchvision
#   transform as 'torchvision/<name>'), run on a PIL image between NumpyToPIL and PILToNumpy.
#   mmpretrain has no TrivialAugment of its own; the nearest native one would be RandAugment
#   with num_policies=1 and magnitude_std='inf'.
# - random erasing p=0.1 (area 2-33%, aspect 0.3-3.3): mmpretrain's RandomErasing filling with the
#   mean colour, which is torchvision's value 0 after normalisation.
# - mixup 0.2 / cutmix 1.0, one of the two per batch with equal chance: mmpretrain's batch
#   augments (model.train_cfg.augments); label smoothing 0.1 on the mixed targets: LabelSmoothLoss
#   mode 'original' (= torch's CrossEntropyLoss(label_smoothing=0.1) on soft targets).
# - EMA of parameters and buffers every 32 iterations, decay adjusted as torchvision does:
#   alpha = (1 - 0.99998) * (8 GPUs * 128 * 32 steps / 600 epochs) = 1.0923e-3 (mmengine's
#   `momentum` is that alpha); the average restarts from the model until warm-up ends (epoch 5).
#   mmengine validates and checkpoints the EMA weights.
# - repeated augmentation x4: mmpretrain's RepeatAugSampler(num_repeats=4) (an epoch still sees
#   len(dataset) samples; torchvision rounds that down to a multiple of 256).
# - train: RandomResizedCrop 176 (FixRes mitigation: train small, evaluate at 224), flip;
#   evaluation: resize the short side to 232, centre crop 224, bilinear (Pillow, as torchvision).
#   python tools/train.py configs/resnext50_32x4d_modern-recipe_imagenet.py     (1 process)
#   bash tools/dist_train.sh configs/resnext50_32x4d_modern-recipe_imagenet.py 8
_base_ = ['./_base_/resnext_imagenet.py']

epochs = 600
warmup_epochs = 5
gpus, batch_per_gpu = 8, 128
ema_steps = 32
ema_alpha = (1 - 0.99998) * gpus * batch_per_gpu * ema_steps / epochs
bgr_mean = (104, 116, 124)  # the data preprocessor's RGB mean, reversed and rounded

# torchvision initialises every BN weight to 1 (its ResNets default to zero_init_residual=False).
model = dict(
    backbone=dict(depth=50, groups=32, width_per_group=4, zero_init_residual=False),
    head=dict(
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original',
                  loss_weight=1.0)),
    train_cfg=dict(augments=[dict(type='Mixup', alpha=0.2), dict(type='CutMix', alpha=1.0)]))

train_pipeline = [
    dict(type='resnext_plugin.StrictLoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=176, backend='pillow', interpolation='bilinear'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='NumpyToPIL', to_rgb=True),
    dict(type='torchvision/TrivialAugmentWide', interpolation='bilinear'),
    dict(type='PILToNumpy', to_bgr=True),
    dict(type='RandomErasing', erase_prob=0.1, min_area_ratio=0.02, max_area_ratio=0.33,
         aspect_range=(0.3, 3.3), mode='const', fill_color=bgr_mean),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='resnext_plugin.StrictLoadImageFromFile'),
    dict(type='ResizeEdge', scale=232, edge='short', backend='pillow', interpolation='bilinear'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
tta_pipeline = [
    dict(type='resnext_plugin.StrictLoadImageFromFile'),
    dict(type='ResizeEdge', scale=232, edge='short', backend='pillow', interpolation='bilinear'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='TestTimeAug',
         transforms=[[dict(type='RandomFlip', prob=1., direction='horizontal'),
                      dict(type='RandomFlip', prob=0., direction='horizontal')],
                     [dict(type='PackInputs')]]),
]
train_dataloader = dict(
    batch_size=batch_per_gpu,
    dataset=dict(pipeline=train_pipeline),
    sampler=dict(type='RepeatAugSampler', num_repeats=4, shuffle=True))
val_dataloader = dict(batch_size=batch_per_gpu, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.5, momentum=0.9, weight_decay=2e-5),
    paramwise_cfg=dict(norm_decay_mult=0.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, end_factor=1.0, by_epoch=True, begin=0,
         end=warmup_epochs),
    dict(type='CosineAnnealingLR', T_max=epochs - warmup_epochs, eta_min=0.0, by_epoch=True,
         begin=warmup_epochs, end=epochs),
]
train_cfg = dict(by_epoch=True, max_epochs=epochs, val_interval=1)
auto_scale_lr = dict(base_batch_size=gpus * batch_per_gpu)
custom_hooks = [
    dict(type='EMAHook', momentum=ema_alpha, interval=ema_steps, update_buffers=True,
         begin_epoch=warmup_epochs, priority='ABOVE_NORMAL'),
    dict(type='resnext_plugin.TrainingCurvesHook'),
    dict(type='resnext_plugin.StopOnNonFiniteLossHook'),
    dict(type='resnext_plugin.ResumableRandomnessHook'),
]
