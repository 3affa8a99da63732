# Mask R-CNN FPN (mmdet's own model base) with the plugin's ResNeXt as backbone.
# Dataset, schedule and runtime come from the configs that inherit this file.
_base_ = 'mmdet::_base_/models/mask-rcnn_r50_fpn.py'

# resnext_plugin registers the backbone; resnext_plugin.upstream_fixes fixes mmengine's
# checkpoint loading on torch>=2.6, makes checkpoint writes atomic and mmcv's RoIAlign safe for
# channels_last features (see its docstring); both are imported on every rank.
custom_imports = dict(imports=['resnext_plugin', 'resnext_plugin.upstream_fixes'],
                      allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='resnext_plugin.ResNeXt',
        depth=50,
        groups=32,
        width_per_group=4,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=True,
        # With norm_eval every BatchNorm is a fixed affine map: fold it into the convolution
        # before it at each forward (one pass over the activations less per norm; gradients
        # still reach the convolutions). Outputs equal the unfolded model's within fp32 rounding.
        fold_frozen_bn=True,
        style='pytorch',
        # A backbone-only checkpoint (keys conv1, bn1, layer1...), written by
        #   python tools/convert_checkpoint.py CLASSIFIER.pth DST --from plugin --to backbone
        # Paths are relative to the directory training is started from (the repo root).
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/resnext50_32x4d_imagenet_backbone.pth')),
    # ResNeXt's stage outputs are 256 * 2**i channels whatever C and d are
    # (backbone.feature_info[i]['num_chs']; tests/test_pipelines/test_detection.py checks it).
    neck=dict(in_channels=[256, 512, 1024, 2048]))
