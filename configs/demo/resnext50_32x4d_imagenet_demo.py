# The real ResNeXt-50 (32x4d) ImageNet config, shrunk to the generated demo data set so that it
# trains on a laptop CPU in minutes. Changed: data root, image size, batch and schedule; the
# model, optimiser, augmentations and evaluation are the real config's. The lr follows the
# recipe's linear rule, 0.1 per 256 images (auto_scale_lr).
#   python tools/make_demo_imagenet.py --out data/demo_imagenet
#   python tools/train.py configs/demo/resnext50_32x4d_imagenet_demo.py
_base_ = ['../resnext50_32x4d_imagenet.py']

data_root = 'data/demo_imagenet'
image_size = 24
batch_size = 32

train_pipeline = [
    dict(type='resnext_plugin.StrictLoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=image_size),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='resnext_plugin.StrictLoadImageFromFile'),
    dict(type='ResizeEdge', scale=image_size * 8 // 7, edge='short'),  # 256 / 224
    dict(type='CenterCrop', crop_size=image_size),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=1,
    persistent_workers=True,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=100,
    num_workers=1,
    persistent_workers=True,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
# tools/test.py --tta: the test pipeline above with the horizontal flip (tta_model from the base).
tta_pipeline = [
    *test_pipeline[:-1],
    dict(type='TestTimeAug',
         transforms=[[dict(type='RandomFlip', prob=1., direction='horizontal'),
                      dict(type='RandomFlip', prob=0., direction='horizontal')],
                     [dict(type='PackInputs')]]),
]

# lr = 0.1 * total batch / 256 (0.0125 for one process x 32 images)
auto_scale_lr = dict(enable=True, base_batch_size=256)
# 6 epochs of 1,000 images; lr / 10 for the last two (the recipe's step schedule, shortened).
train_cfg = dict(max_epochs=6, val_interval=1)
param_scheduler = dict(milestones=[4])
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(max_keep_ckpts=1))
