# The paper's CIFAR recipe for every configs/paper/resnext29_*_cifar10.py experiment (Xie et al.,
# CVPR 2017, Sec. 5.3 and Appendix A; the authors' code, github.com/facebookresearch/ResNeXt):
# - ResNeXt-29: one 3x3 stride-1 convolution of 64 filters (stem_type='cifar': no max-pool), three
#   stages of three bottleneck blocks at 32, 16 and 8 px (strides 1, 2, 2) with 256, 512 and 1024
#   output channels (base_channels=64), global average pooling and a linear classifier. Stage i's
#   grouped 3x3 convolution is C*d*2^i wide (C x 64d: 64*C, 128*C, 256*C).
# - 8 GPUs x 16 = 128 images per step; SGD, lr 0.1, momentum 0.9, weight decay 5e-4; 300 epochs,
#   lr / 10 at epochs 150 and 225; every BN starts at gamma = 1 (./paper_imagenet.py).
# - augmentation: 4-pixel zero padding, random 32x32 crop, horizontal flip; nothing else.
# - normalisation: the authors' per-channel mean / std of the CIFAR-10 training set.
# - 50k training images, evaluation on the 10k test set.
# Two notes from the authors' README and code: the arXiv paper's CIFAR numbers came from
# pre-activation bottlenecks at batch 256, and the original bottleneck at batch 128 (this recipe)
# did better; their SGD uses Nesterov momentum (fb.resnet.torch), which the paper does not
# mention (add optim_wrapper.optimizer.nesterov=True to follow the code).
# Data: mmpretrain's CIFAR10 files under data/cifar10 (downloaded with MD5 checks when missing),
# read by resnext_plugin.CheckedCIFAR10, which names a missing or altered file.
_base_ = ['./paper_imagenet.py']
custom_imports = dict(imports=['resnext_plugin', 'resnext_plugin.upstream_fixes',
                               'resnext_plugin.datasets'],
                      allow_failed_imports=False)

num_classes = 10
model = dict(
    backbone=dict(
        depth=29,
        stem_type='cifar',
        stem_channels=64,
        base_channels=64,
        num_stages=3,
        strides=(1, 2, 2),
        dilations=(1, 1, 1),
        out_indices=(2, )),
    head=dict(num_classes=num_classes, in_channels=1024, topk=(1, )))

data_root = 'data/cifar10'
dataset_type = 'resnext_plugin.CheckedCIFAR10'
data_preprocessor = dict(
    num_classes=num_classes,
    mean=[125.3, 123.0, 113.9],
    std=[63.0, 62.1, 66.7],
    to_rgb=False)  # the CIFAR arrays are RGB already
train_pipeline = [
    dict(type='RandomCrop', crop_size=32, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='PackInputs')]
# tools/test.py --tta: the test image and its horizontal flip (the arrays need no loading).
tta_pipeline = [
    dict(type='TestTimeAug',
         transforms=[[dict(type='RandomFlip', prob=1., direction='horizontal'),
                      dict(type='RandomFlip', prob=0., direction='horizontal')],
                     [dict(type='PackInputs')]]),
]
train_dataloader = dict(
    batch_size=16,
    num_workers=2,
    dataset=dict(type=dataset_type, data_root=data_root, split='train', download=True,
                 verify_checksums=True, pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    batch_size=100,
    num_workers=2,
    dataset=dict(type=dataset_type, data_root=data_root, split='test', download=True,
                 verify_checksums=True, pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4))
param_scheduler = dict(
    type='MultiStepLR', by_epoch=True, milestones=[150, 225], gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=300, val_interval=1)
# lr 0.1 is for 128 images per step (8 x 16); `tools/train.py --auto-scale-lr` rescales it.
auto_scale_lr = dict(base_batch_size=128)
default_hooks = dict(logger=dict(interval=50))
