"""mmdet's Mask R-CNN as an exported graph: a normalised, padded NCHW image (batch 1) in,
``dets`` / ``labels`` / ``masks`` out, as mmdeploy's end-to-end Mask R-CNN gives them.

:class:`MaskRCNNOutputs` computes what mmdet 3.3's ``TwoStageDetector.predict`` computes after
the data preprocessor (``rescale=False``), written as mmdeploy's rewriters write it so that the
TorchScript exporter maps every step to a standard ONNX operator and no custom-op library is
needed:

* RPN (``RPNHead._predict_by_feat_single``): anchors of the prior generator for the traced
  feature sizes (``Range``), the ``nms_pre`` best per level (``TopK`` with ``k`` clamped to the
  level's size), ``DeltaXYWHBBoxCoder`` decoding clipped to the input, ``min_bbox_size``
  (``NonZero``), per-level NMS (mmcv's ``batched_nms`` offset trick, then
  ``torchvision.ops.nms`` -> ``NonMaxSuppression``), the first ``max_per_img`` proposals;
* RoI features (``SingleRoIExtractor``): ``torchvision.ops.roi_align`` (-> ``RoiAlign``,
  ``coordinate_transformation_mode='half_pixel'`` for mmcv's ``aligned=True``, opset >= 16) on
  every level for all RoIs, the level of each RoI (mmdet's ``map_roi_levels``) selecting its
  row (``Where``): no branch on data, as mmdeploy's rewrite of the extractor;
* bbox head: softmax, per-class decoding, ``score_thr`` (``NonZero``), class-wise NMS,
  ``max_per_img`` (mmdet's ``multiclass_nms``);
* mask head on the kept boxes: the sigmoid of the predicted class's 28 x 28 map.

Boxes are in the network input's pixel frame (the padded batch the ``DetDataPreprocessor``
gives), clipped to the input's size; :class:`~resnext_plugin.export.evaluation.ExportedDetector`
clips them to the image, rescales them to the original image and pastes the masks.

:func:`compare_detections` and :func:`enforce_detections` are the detector's verification
(detections matched by class and box; boxes judged relative to the input size).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import numpy as np
import torch
from torch import nn

from .errors import ExportError, VerificationError
from .verify import OutputCheck

INPUT_NAMES = ["input"]
OUTPUT_NAMES = ["dets", "labels", "masks"]
DYNAMIC_AXES = {"input": {2: "height", 3: "width"}, "dets": {1: "num_dets"},
                "labels": {1: "num_dets"}, "masks": {1: "num_dets"}}
OUTPUTS_META = [
    {"name": "dets", "shape": [1, "num_dets", 5], "dtype": "float32",
     "meaning": "x1, y1, x2, y2 (pixels of the network input, i.e. the resized and padded "
                "image, clipped to it), score; sorted by score"},
    {"name": "labels", "shape": [1, "num_dets"], "dtype": "int64",
     "meaning": "class index of each detection (0-based, into 'classes')"},
    {"name": "masks", "shape": [1, "num_dets", "mask_h", "mask_w"], "dtype": "float32",
     "meaning": "mask probabilities of each detection's class inside its box (sigmoid of the "
                "mask head, before pasting); paste into the image and threshold at "
                "mask_thr_binary (mmdet's _do_paste_mask)"},
]
#: Largest differences an exported detector may show against PyTorch, per precision:
#: ``boxes`` relative to the input's longer side, ``scores`` and ``masks`` absolute.
DETECTION_TOLERANCE = {"fp32": {"boxes": 1e-3, "scores": 1e-3, "masks": 1e-3}}


def _cfg_get(cfg: object, key: str, default: object = None) -> object:
    if cfg is None:
        return default
    if isinstance(cfg, dict):
        return cfg.get(key, default)
    return getattr(cfg, key, default)


def _nms_iou(nms_cfg: object, where: str) -> tuple[float, bool]:
    kind = _cfg_get(nms_cfg, "type", "nms")
    if kind != "nms":
        raise ExportError(f"Mask R-CNN export supports plain NMS; {where} uses {kind!r}")
    return float(_cfg_get(nms_cfg, "iou_threshold")), bool(_cfg_get(nms_cfg, "class_agnostic",
                                                                    False))


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor,
                iou_threshold: float) -> torch.Tensor:
    """mmcv's ``batched_nms`` (class-wise NMS by offsetting each class's boxes by
    ``idxs * (max coordinate + 1)``), then ``torchvision.ops.nms`` (ONNX
    ``NonMaxSuppression``). Returns the kept indices, highest score first.

    The largest coordinate includes a 0, so that an empty input stays valid for every backend
    (boxes are clipped to >= 0, so the offset equals mmcv's).
    """
    from torchvision.ops import nms

    max_coordinate = torch.cat([boxes.reshape(-1), boxes.new_zeros(1)]).max()
    offsets = idxs.to(boxes.dtype) * (max_coordinate + 1)
    return nms(boxes + offsets[:, None], scores, iou_threshold)


def _topk(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``scores.topk(min(k, len(scores)))`` with the length traced (mmdeploy's dynamic
    ``topk``): the exported graph clamps ``k`` for every input size."""
    size = scores.shape[0]
    if isinstance(size, torch.Tensor):  # traced
        kk = torch.tensor(k, dtype=torch.long)
        size = kk.new_zeros(()) + size
        kk = torch.where(kk < size, kk, size)
        return scores.topk(kk)
    return scores.topk(min(k, size))


class _Coder:
    """mmdet's ``DeltaXYWHBBoxCoder.decode`` (``delta2bbox``) with the clip to the input."""

    def __init__(self, coder: object, where: str) -> None:
        from mmdet.models.task_modules.coders import DeltaXYWHBBoxCoder

        if not isinstance(coder, DeltaXYWHBBoxCoder):
            raise ExportError(f"Mask R-CNN export supports DeltaXYWHBBoxCoder; {where} uses "
                              f"{type(coder).__name__}")
        if getattr(coder, "add_ctr_clamp", False):
            raise ExportError(f"{where}: DeltaXYWHBBoxCoder(add_ctr_clamp=True) is not "
                              "supported by the export")
        self.means = tuple(float(v) for v in coder.means)
        self.stds = tuple(float(v) for v in coder.stds)
        self.max_ratio = float(np.abs(np.log(16 / 1000)))
        self.clip_border = bool(coder.clip_border)

    def decode(self, rois: torch.Tensor, deltas: torch.Tensor, max_xyxy: torch.Tensor
               ) -> torch.Tensor:
        means = deltas.new_tensor(self.means).view(1, -1)
        stds = deltas.new_tensor(self.stds).view(1, -1)
        denorm = deltas * stds + means
        dxy, dwh = denorm[:, :2], denorm[:, 2:]
        pxy = (rois[:, :2] + rois[:, 2:]) * 0.5
        pwh = rois[:, 2:] - rois[:, :2]
        dxy_wh = pwh * dxy
        dwh = dwh.clamp(min=-self.max_ratio, max=self.max_ratio)
        gxy = pxy + dxy_wh
        gwh = pwh * dwh.exp()
        boxes = torch.cat([gxy - gwh * 0.5, gxy + gwh * 0.5], dim=-1)
        if self.clip_border:
            boxes = torch.min(torch.max(boxes, boxes.new_zeros(1)), max_xyxy)
        return boxes


class _RoIFeatures(nn.Module):
    """mmdet's ``SingleRoIExtractor`` as mmdeploy's rewrite computes it: RoIAlign on every
    level for all RoIs, each RoI's row taken from its level (``torch.where``)."""

    def __init__(self, extractor: nn.Module, where: str) -> None:
        super().__init__()
        from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor

        if not isinstance(extractor, SingleRoIExtractor):
            raise ExportError(f"Mask R-CNN export supports SingleRoIExtractor; {where} is "
                              f"{type(extractor).__name__}")
        self.levels = []
        for layer in extractor.roi_layers:
            if getattr(layer, "pool_mode", "avg") != "avg":
                raise ExportError(f"{where}: RoIAlign pool_mode {layer.pool_mode!r}; the ONNX "
                                  "RoiAlign export supports 'avg'")
            self.levels.append((tuple(int(s) for s in layer.output_size),
                                float(layer.spatial_scale), int(layer.sampling_ratio),
                                bool(layer.aligned)))
        self.out_channels = int(extractor.out_channels)
        self.finest_scale = float(extractor.finest_scale)
        self.output_size = self.levels[0][0]

    def forward(self, feats: Sequence[torch.Tensor], rois: torch.Tensor) -> torch.Tensor:
        from torchvision.ops import roi_align

        num_levels = len(self.levels)
        scale = torch.sqrt((rois[:, 3] - rois[:, 1]) * (rois[:, 4] - rois[:, 2]))
        target = torch.floor(torch.log2(scale / self.finest_scale + 1e-6))
        target = target.clamp(min=0, max=num_levels - 1).long()
        out: Optional[torch.Tensor] = None
        for level, (size, spatial_scale, sampling_ratio, aligned) in enumerate(self.levels):
            level_feats = roi_align(feats[level], rois, size, spatial_scale, sampling_ratio,
                                    aligned)
            if out is None:
                out = torch.zeros_like(level_feats)
            out = torch.where((target == level).view(-1, 1, 1, 1), level_feats, out)
        return out


class MaskRCNNOutputs(nn.Module):
    """What mmdet's ``TwoStageDetector.predict`` (Mask R-CNN, ``rescale=False``) computes after
    the data preprocessor, for one image, with export-friendly operators.

    Args:
        model: An mmdet ``TwoStageDetector`` with an ``RPNHead`` and a ``StandardRoIHead``
            holding a bbox and an ``FCNMaskHead`` mask head (the project's Mask R-CNN configs).

    ``forward(inputs)`` takes a ``[1, 3, H, W]`` float tensor and returns ``dets`` ``[1, N, 5]``,
    ``labels`` ``[1, N]`` (int64) and ``masks`` ``[1, N, 28, 28]``.

    Raises:
        ExportError: The model is not such a Mask R-CNN, or uses a setting the export lacks.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        from mmdet.models.dense_heads import RPNHead
        from mmdet.models.detectors import TwoStageDetector
        from mmdet.models.roi_heads import StandardRoIHead
        from mmdet.models.roi_heads.mask_heads import FCNMaskHead

        name = type(model).__name__
        if not isinstance(model, TwoStageDetector):
            raise ExportError(f"detector export supports mmdet's two-stage detectors (Mask "
                              f"R-CNN); the config builds {name}")
        if not isinstance(model.rpn_head, RPNHead) or not isinstance(model.roi_head,
                                                                     StandardRoIHead):
            raise ExportError(f"detector export supports RPNHead + StandardRoIHead; {name} "
                              f"has {type(model.rpn_head).__name__} + "
                              f"{type(model.roi_head).__name__}")
        roi_head = model.roi_head
        if not roi_head.with_mask or not isinstance(roi_head.mask_head, FCNMaskHead):
            raise ExportError(f"detector export needs an FCNMaskHead mask head (Mask R-CNN); "
                              f"{name} has none")
        if roi_head.with_shared_head or getattr(roi_head, "share_roi_extractor", False):
            raise ExportError("detector export does not support a shared RoI head or a shared "
                              "RoI extractor")
        rpn = model.rpn_head
        if not rpn.use_sigmoid_cls:
            raise ExportError("detector export supports an RPN with sigmoid scores")
        if getattr(roi_head.bbox_head, "custom_cls_channels", False):
            raise ExportError("detector export does not support custom classification channels")
        self.model = model
        self.rpn_coder = _Coder(rpn.bbox_coder, "rpn_head")
        self.rcnn_coder = _Coder(roi_head.bbox_head.bbox_coder, "roi_head.bbox_head")
        generator = rpn.prior_generator
        for level, anchors in enumerate(generator.base_anchors):
            self.register_buffer(f"base_anchors_{level}", anchors.clone().float(),
                                 persistent=False)
        self.strides = [(float(w), float(h)) for w, h in generator.strides]
        rpn_cfg = rpn.test_cfg
        self.nms_pre = int(_cfg_get(rpn_cfg, "nms_pre", -1))
        self.min_bbox_size = float(_cfg_get(rpn_cfg, "min_bbox_size", -1))
        self.rpn_iou, _ = _nms_iou(_cfg_get(rpn_cfg, "nms"), "test_cfg.rpn.nms")
        self.rpn_max = int(_cfg_get(rpn_cfg, "max_per_img"))
        rcnn_cfg = roi_head.test_cfg
        self.score_thr = float(_cfg_get(rcnn_cfg, "score_thr"))
        self.rcnn_iou, self.rcnn_class_agnostic = _nms_iou(_cfg_get(rcnn_cfg, "nms"),
                                                           "test_cfg.rcnn.nms")
        self.rcnn_max = int(_cfg_get(rcnn_cfg, "max_per_img", -1))
        self.mask_thr_binary = float(_cfg_get(rcnn_cfg, "mask_thr_binary", 0.5))
        self.bbox_roi = _RoIFeatures(roi_head.bbox_roi_extractor,
                                     "roi_head.bbox_roi_extractor")
        self.mask_roi = _RoIFeatures(roi_head.mask_roi_extractor,
                                     "roi_head.mask_roi_extractor")
        self.num_classes = int(roi_head.bbox_head.num_classes)
        self.reg_class_agnostic = bool(roi_head.bbox_head.reg_class_agnostic)
        self.mask_class_agnostic = bool(roi_head.mask_head.class_agnostic)

    # ------------------------------------------------------------------ RPN
    def _anchors(self, level: int, feat: torch.Tensor) -> torch.Tensor:
        """``AnchorGenerator.single_level_grid_priors`` for the (traced) size of ``feat``."""
        base = getattr(self, f"base_anchors_{level}").to(feat.dtype)
        stride_w, stride_h = self.strides[level]
        shift_x = torch.arange(feat.shape[-1], device=feat.device).to(feat.dtype) * stride_w
        shift_y = torch.arange(feat.shape[-2], device=feat.device).to(feat.dtype) * stride_h
        xx = shift_x.view(1, -1).expand(shift_y.shape[0], -1).reshape(-1)
        yy = shift_y.view(-1, 1).expand(-1, shift_x.shape[0]).reshape(-1)
        shifts = torch.stack([xx, yy, xx, yy], dim=-1)
        return (base[None, :, :] + shifts[:, None, :]).reshape(-1, 4)

    def _proposals(self, feats: Sequence[torch.Tensor], max_xyxy: torch.Tensor) -> torch.Tensor:
        cls_scores, bbox_preds = self.model.rpn_head(feats)
        all_scores, all_deltas, all_anchors, all_levels = [], [], [], []
        for level, (cls_score, bbox_pred) in enumerate(zip(cls_scores, bbox_preds)):
            scores = cls_score[0].permute(1, 2, 0).reshape(-1).sigmoid()
            deltas = bbox_pred[0].permute(1, 2, 0).reshape(-1, 4)
            anchors = self._anchors(level, cls_score)
            if self.nms_pre > 0:
                scores, keep = _topk(scores, self.nms_pre)
                deltas = deltas[keep]
                anchors = anchors[keep]
            all_scores.append(scores)
            all_deltas.append(deltas)
            all_anchors.append(anchors)
            all_levels.append(torch.zeros_like(scores, dtype=torch.long) + level)
        boxes = self.rpn_coder.decode(torch.cat(all_anchors), torch.cat(all_deltas), max_xyxy)
        scores = torch.cat(all_scores)
        levels = torch.cat(all_levels)
        if self.min_bbox_size >= 0:
            wh = boxes[:, 2:] - boxes[:, :2]
            valid = (wh[:, 0] > self.min_bbox_size) & (wh[:, 1] > self.min_bbox_size)
            keep = torch.nonzero(valid).squeeze(1)
            boxes, scores, levels = boxes[keep], scores[keep], levels[keep]
        keep = batched_nms(boxes, scores, levels, self.rpn_iou)[:self.rpn_max]
        return boxes[keep]

    # ------------------------------------------------------------------ R-CNN
    def _detections(self, feats: Sequence[torch.Tensor], proposals: torch.Tensor,
                    max_xyxy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rois = torch.cat([proposals.new_zeros(proposals.shape[0], 1), proposals], dim=1)
        bbox_feats = self.bbox_roi(feats, rois)
        cls_score, bbox_pred = self.model.roi_head.bbox_head(bbox_feats)
        scores = torch.softmax(cls_score, dim=-1)[:, :-1]
        num_classes = self.num_classes
        deltas = bbox_pred.reshape(-1, 4)
        if self.reg_class_agnostic:
            boxes = self.rcnn_coder.decode(proposals, deltas, max_xyxy)
            boxes = boxes[:, None, :].expand(-1, num_classes, -1)
        else:
            repeated = proposals[:, None, :].expand(-1, num_classes, -1).reshape(-1, 4)
            boxes = self.rcnn_coder.decode(repeated, deltas, max_xyxy)
        boxes = boxes.reshape(-1, 4)
        labels = torch.arange(num_classes, device=scores.device).view(1, -1).expand_as(scores)
        labels = labels.reshape(-1)
        scores = scores.reshape(-1)
        keep = torch.nonzero(scores > self.score_thr).squeeze(1)
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        idxs = torch.zeros_like(labels) if self.rcnn_class_agnostic else labels
        keep = batched_nms(boxes, scores, idxs, self.rcnn_iou)
        if self.rcnn_max > 0:
            keep = keep[:self.rcnn_max]
        dets = torch.cat([boxes[keep], scores[keep][:, None]], dim=1)
        return dets, labels[keep]

    def _masks(self, feats: Sequence[torch.Tensor], boxes: torch.Tensor, labels: torch.Tensor
               ) -> torch.Tensor:
        rois = torch.cat([boxes.new_zeros(boxes.shape[0], 1), boxes], dim=1)
        mask_preds = self.model.roi_head.mask_head(self.mask_roi(feats, rois))
        if self.mask_class_agnostic:
            chosen = mask_preds[:, 0]
        else:
            index = labels.view(-1, 1, 1, 1).expand(-1, 1, mask_preds.shape[2],
                                                     mask_preds.shape[3])
            chosen = mask_preds.gather(1, index).squeeze(1)
        return chosen.sigmoid()

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``dets`` [1, N, 5], ``labels`` [1, N], ``masks`` [1, N, 28, 28] for ``inputs``
        [1, 3, H, W] (normalised, padded, as the data preprocessor gives it)."""
        feats = self.model.extract_feat(inputs)
        size = torch._shape_as_tensor(inputs)[2:].to(inputs.dtype)  # H, W (traced)
        max_xyxy = torch.stack([size[1], size[0], size[1], size[0]])
        proposals = self._proposals(feats, max_xyxy)
        roi_feats = feats[:len(self.bbox_roi.levels)]
        dets, labels = self._detections(roi_feats, proposals, max_xyxy)
        masks = self._masks(feats[:len(self.mask_roi.levels)], dets[:, :4], labels)
        return dets[None], labels[None], masks[None]


# ------------------------------------------------------------------ verification
def _match(ref_dets: np.ndarray, ref_labels: np.ndarray, out_dets: np.ndarray,
           out_labels: np.ndarray) -> list[int]:
    """For each reference detection, the exported one of the same class with the closest box
    (each used once): the order of detections with (nearly) equal scores may differ."""
    used: set[int] = set()
    order = []
    for i in range(len(ref_dets)):
        candidates = [j for j in range(len(out_dets))
                      if j not in used and out_labels[j] == ref_labels[i]]
        if not candidates:
            return []
        best = min(candidates, key=lambda j: float(np.abs(out_dets[j, :4] - ref_dets[i, :4])
                                                   .max()))
        used.add(best)
        order.append(best)
    return order


def compare_detections(reference: Sequence[Sequence[np.ndarray]],
                       exported: Sequence[Sequence[np.ndarray]],
                       sizes: Sequence[tuple[int, int]]) -> list[OutputCheck]:
    """Compare per image ``(dets, labels, masks)`` of PyTorch and of the exported model.

    Detections are matched by class and box (each image must give the same number of
    detections per class). Figures: ``dets`` boxes as the largest coordinate difference
    divided by the input's longer side (``sizes``: input height and width per image),
    ``dets`` scores, ``masks`` probabilities; ``labels`` 0 (they must agree, else the check
    fails).

    Raises:
        VerificationError: An output is missing, or an image gives other detections (count or
            classes), naming the output and the image.
    """
    worst = {"boxes": (0.0, 0), "scores": (0.0, 0), "masks": (0.0, 0)}
    for index, (ref, out, (height, width)) in enumerate(zip(reference, exported, sizes)):
        if len(out) != len(ref):
            raise VerificationError(f"the exported model gives {len(out)} outputs, PyTorch "
                                    f"{len(ref)} ({', '.join(OUTPUT_NAMES)})")
        (ref_dets,), (ref_labels,), (ref_masks,) = ref
        (out_dets,), (out_labels,), (out_masks,) = out
        if len(out_dets) != len(ref_dets) or len(out_labels) != len(ref_labels):
            raise VerificationError(
                f"output 'dets' of image {index}: {len(out_dets)} detections in the exported "
                f"model, {len(ref_dets)} in PyTorch")
        order = _match(ref_dets, ref_labels, out_dets, out_labels)
        if len(order) != len(ref_dets):
            raise VerificationError(
                f"output 'labels' of image {index}: the classes differ (exported "
                f"{sorted(out_labels.tolist())}, PyTorch {sorted(ref_labels.tolist())})")
        if not order:
            continue
        out_dets, out_masks = out_dets[order], out_masks[order]
        figures = {
            "boxes": float(np.abs(out_dets[:, :4].astype(np.float64) - ref_dets[:, :4]).max()
                           / max(height, width)),
            "scores": float(np.abs(out_dets[:, 4].astype(np.float64) - ref_dets[:, 4]).max()),
            "masks": float(np.abs(out_masks.astype(np.float64) - ref_masks).max()),
        }
        for key, value in figures.items():
            if value > worst[key][0]:
                worst[key] = (value, index)
    count = len(reference)
    return [OutputCheck("dets.boxes", worst["boxes"][0], worst["boxes"][1], None, count),
            OutputCheck("dets.scores", worst["scores"][0], worst["scores"][1], None, count),
            OutputCheck("labels", 0.0, 0, None, count),
            OutputCheck("masks", worst["masks"][0], worst["masks"][1], None, count)]


def detection_tolerance(precision: str) -> dict:
    """The verification bounds of ``precision`` for a detector (for the sidecar)."""
    bounds = DETECTION_TOLERANCE[precision]
    return {"dets.boxes_max_diff_relative_to_input_size": bounds["boxes"],
            "dets.scores_max_diff": bounds["scores"], "masks_max_diff": bounds["masks"],
            "detections": "same number and classes per image"}


def enforce_detections(checks: Sequence[OutputCheck], precision: str, what: str) -> None:
    """Raise :class:`VerificationError` naming the first output beyond ``precision``'s
    detector tolerance (:data:`DETECTION_TOLERANCE`)."""
    bounds = DETECTION_TOLERANCE[precision]
    keys = {"dets.boxes": "boxes", "dets.scores": "scores", "masks": "masks"}
    for check in checks:
        key = keys.get(check.output)
        if key is not None and check.max_diff > bounds[key]:
            relative = " (relative to the input size)" if key == "boxes" else ""
            raise VerificationError(
                f"{what}: output '{check.output}' differs from PyTorch's: max abs diff "
                f"{check.max_diff:.3g}{relative} (image {check.worst_sample}) > "
                f"{bounds[key]:g}, the {precision} tolerance")


def paste_masks(masks: torch.Tensor, boxes: torch.Tensor, height: int, width: int,
                threshold: float) -> torch.Tensor:
    """Masks of the image (``[N, height, width]``): mmdet's ``FCNMaskHead`` paste on CPU
    (``_do_paste_mask`` per detection, ``skip_empty``), thresholded at ``threshold`` (bool),
    or as uint8 ``* 255`` when ``threshold < 0``.

    Args:
        masks: ``[N, h, w]`` probabilities of each detection's class.
        boxes: ``[N, 4]`` boxes in the image's pixels.
    """
    from mmdet.models.roi_heads.mask_heads.fcn_mask_head import _do_paste_mask

    count = len(masks)
    binary = threshold >= 0
    image = torch.zeros(count, height, width, dtype=torch.bool if binary else torch.uint8)
    if count == 0:
        return image
    masks = masks[:, None].float()
    for inds in torch.chunk(torch.arange(count), count):
        chunk, spatial = _do_paste_mask(masks[inds], boxes[inds], height, width,
                                        skip_empty=True)
        if binary:
            chunk = (chunk >= threshold).to(dtype=torch.bool)
        else:
            chunk = (chunk * 255).to(dtype=torch.uint8)
        image[(inds, ) + spatial] = chunk
    return image


def mask_threshold(cfg: object) -> float:
    """``test_cfg.rcnn.mask_thr_binary`` of a Mask R-CNN config's model (0.5 if unset)."""
    test_cfg = _cfg_get(_cfg_get(cfg, "model"), "test_cfg")
    return float(_cfg_get(_cfg_get(test_cfg, "rcnn"), "mask_thr_binary", 0.5))

