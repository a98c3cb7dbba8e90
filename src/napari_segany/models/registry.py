"""Pretrained models declared as data.

One :class:`ModelSpec` per checkpoint.  The loader (``engine.weights``), the
GUI model picker and the tests all read this table; nothing else knows file
names, URLs or normalisation constants.  Builders and key mappers are dotted
paths so that reading the registry imports no network code.
"""
from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

SAM_PIXEL_MEAN = (123.675, 116.28, 103.53)  # 0..255 scale, RGB
SAM_PIXEL_STD = (58.395, 57.12, 57.375)
IMAGENET_MEAN_01 = (0.485, 0.456, 0.406)  # 0..1 scale, RGB
IMAGENET_STD_01 = (0.229, 0.224, 0.225)

#: What a model does, which decides how the engine drives it.
PROMPTABLE = "promptable"  # image encoder + prompt encoder + mask decoder (SamPredictor-like)
INSTANCE = "instance"  # one pass -> boxes + instance masks (FastSAM)
DETECTOR = "detector"  # one pass -> boxes (MobileSAMv2 object-aware model)


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to fetch, read, build and feed one pretrained model.

    ``preprocessing`` names the image transform of the engine:
    ``"longest_side"`` (SAM: resize longest side, normalise, pad bottom/right),
    ``"stretch"`` (EfficientSAM: resize to a square, no padding),
    ``"stretch_antialias"`` (SAM 2: the same with an antialiased resize and bilinear masks) or
    ``"letterbox"`` (YOLOv8: keep aspect, pad to a stride multiple with 114).

    ``input_size`` is the side of the *prompt frame*: the square that prompts, low-res masks
    and their post-processing refer to (SAM: 1024).  ``encoder_input_size`` is the side of
    the image the encoder takes, when it differs (EfficientViT-SAM: 512 px encoder input in
    a 1024-px prompt frame); None means ``input_size``.
    """

    name: str
    family: str
    task: str
    builder: str  # "module:function"; called as builder(**builder_kwargs, **checkpoint_config)
    file_name: str
    license: str
    checkpoint_format: str  # reader in engine.weights.readers: state_dict | efficient_sam | ultralytics
    key_mapper: str | None = None  # "module:function": official state dict -> ours (pure)
    urls: tuple[str, ...] = ()
    sha256: str | None = None
    builder_kwargs: Mapping[str, Any] = field(default_factory=dict)
    input_size: int = 1024
    encoder_input_size: int | None = None
    preprocessing: str = "longest_side"
    pixel_mean: tuple[float, ...] = SAM_PIXEL_MEAN
    pixel_std: tuple[float, ...] = SAM_PIXEL_STD
    supports_mask_input: bool = True
    #: One mask per prompt (everything mode) = best-IoU of the 3 candidates instead of token 0:
    #: EfficientSAM's official entry points only ever use multimask output.
    single_mask_from_multimask: bool = False
    description: str = ""
    download_hint: str = ""  # where to get the file when there is no direct URL
    #: The official image predictor returns its low-res logits clamped to +-this (SAM 2:
    #: 32), and they go back as ``mask_input`` so; None: unclamped (SAM).  Masks are always
    #: upsampled from the unclamped logits.
    low_res_logit_limit: float | None = None
    #: Everything-mode parameters where the family's official generator differs from SAM's
    #: defaults, per method (SAM 2's generator: ``{"grid": {"pred_iou_thresh": 0.8}}``); a
    #: user's parameters override them.
    everything_defaults: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: Settings read from the official file that tell this model's file from its siblings
    #: built by the same builder (ultralytics: ``has_proto``, ``scale``).  Only used to name
    #: the right model when a file is given to the wrong one.
    file_signature: Mapping[str, Any] = field(default_factory=dict)

    @property
    def encoder_size(self) -> int:
        """The side of the image the encoder takes (``encoder_input_size`` or ``input_size``)."""
        return int(self.encoder_input_size or self.input_size)

    @property
    def title(self) -> str:
        """Short human name: the description up to its first ':' or '('."""
        return re.split(r":| \(", self.description, maxsplit=1)[0].strip() or self.name

    def build(self, **checkpoint_config) -> Any:
        """Instantiate the (randomly initialised) network."""
        return resolve(self.builder)(**{**dict(self.builder_kwargs), **checkpoint_config})

    def map_keys(self, state_dict: dict) -> dict:
        """Official key layout -> our module's layout (identity when names agree)."""
        return resolve(self.key_mapper)(state_dict) if self.key_mapper else state_dict


def resolve(dotted: str) -> Callable:
    """Import ``"package.module:attribute"`` lazily."""
    module_name, _, attr = dotted.partition(":")
    return getattr(importlib.import_module(module_name), attr)


_SAM_MAPPER = "napari_segany.models.sam.keys:map_sam_keys"
_SAM_URL = "https://dl.fbaipublicfiles.com/segment_anything/"
_ZENODO = "https://zenodo.org/record/"
_MICRO_SAM_LICENSE = "CC-BY-4.0 (micro-sam fine-tune; credit micro-sam when you publish)"
_ULTRA_URL = "https://github.com/ultralytics/assets/releases/download/v8.2.0/"
_SAM2_URL = "https://dl.fbaipublicfiles.com/segment_anything_2/092824/"
_SAM2_MAPPER = "napari_segany.models.sam2.keys:map_sam2_keys"
_SAM2_BUILD = "napari_segany.models.sam2.build:build_sam2_hiera_"


#: SAM 2's image predictor clamps the low-res logits it returns (``SAM2ImagePredictor.predict``).
SAM2_LOW_RES_LOGIT_LIMIT = 32.0
#: SAM2AutomaticMaskGenerator's defaults that differ from SamAutomaticMaskGenerator's.
SAM2_EVERYTHING_DEFAULTS = {"grid": {"pred_iou_thresh": 0.8}}


def _sam2(size: str, builder: str, file: str, description: str) -> ModelSpec:
    """A SAM 2.1 spec: the official file is ``{'model': state_dict}`` (unwrapped by the key
    mapper); no sha256 is published by the authors, so ``sha256`` stays None until the
    release-quality work records one at first download."""
    return ModelSpec(
        name=f"sam2.1_hiera_{size}", family="sam2", task=PROMPTABLE, builder=_SAM2_BUILD + builder,
        file_name=file, urls=(_SAM2_URL + file,), license="Apache-2.0",
        checkpoint_format="state_dict", key_mapper=_SAM2_MAPPER, preprocessing="stretch_antialias",
        pixel_mean=IMAGENET_MEAN_01, pixel_std=IMAGENET_STD_01, description=description,
        low_res_logit_limit=SAM2_LOW_RES_LOGIT_LIMIT, everything_defaults=SAM2_EVERYTHING_DEFAULTS,
    )

_SPECS = (
    ModelSpec(
        name="sam_vit_b", family="sam", task=PROMPTABLE,
        builder="napari_segany.models.sam.build:build_sam_vit_b",
        file_name="sam_vit_b_01ec64.pth", urls=(_SAM_URL + "sam_vit_b_01ec64.pth",),
        sha256="ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
        license="Apache-2.0", checkpoint_format="state_dict", key_mapper=_SAM_MAPPER,
        description="Segment Anything ViT-B (91M encoder parameters, 375 MB)",
    ),
    ModelSpec(
        name="sam_vit_l", family="sam", task=PROMPTABLE,
        builder="napari_segany.models.sam.build:build_sam_vit_l",
        file_name="sam_vit_l_0b3195.pth", urls=(_SAM_URL + "sam_vit_l_0b3195.pth",),
        sha256="3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
        license="Apache-2.0", checkpoint_format="state_dict", key_mapper=_SAM_MAPPER,
        description="Segment Anything ViT-L (308M encoder parameters, 1.25 GB)",
    ),
    ModelSpec(
        name="sam_vit_h", family="sam", task=PROMPTABLE,
        builder="napari_segany.models.sam.build:build_sam_vit_h",
        file_name="sam_vit_h_4b8939.pth", urls=(_SAM_URL + "sam_vit_h_4b8939.pth",),
        sha256="a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
        license="Apache-2.0", checkpoint_format="state_dict", key_mapper=_SAM_MAPPER,
        description="Segment Anything ViT-H (632M encoder parameters, 2.56 GB)",
    ),
    # micro-sam's first fine-tunes (Archit et al., computational-cell-analytics/micro-sam,
    # Zenodo 2023): SAM ViT-B weights, same architecture and preprocessing as sam_vit_b.
    # micro-sam itself loads these files with segment_anything's strict loader, i.e. as a
    # plain SAM state dict; map_sam_keys also accepts micro-sam's training layout
    # ({'model_state': {'sam.<key>': ...}, 'decoder_state': ...}).
    ModelSpec(
        name="micro_sam_vit_b_lm_v1", family="sam", task=PROMPTABLE,
        builder="napari_segany.models.sam.build:build_sam_vit_b",
        file_name="vit_b_lm.pth", urls=(_ZENODO + "8250281/files/vit_b_lm.pth?download=1",),
        sha256="5a59cc4064092d54cd4d92cd967e39168f3760905431e868e474d60fe5464ecd",
        license=_MICRO_SAM_LICENSE, checkpoint_format="state_dict", key_mapper=_SAM_MAPPER,
        description="micro-sam ViT-B for light microscopy (SAM ViT-B fine-tuned on cells and "
                    "nuclei; micro-sam v1 weights)",
    ),
    ModelSpec(
        name="micro_sam_vit_b_em_v1", family="sam", task=PROMPTABLE,
        builder="napari_segany.models.sam.build:build_sam_vit_b",
        file_name="vit_b_em.pth", urls=(_ZENODO + "8250260/files/vit_b_em.pth?download=1",),
        sha256="c04a714a4e14a110f0eec055a65f7409d54e6bf733164d2933a0ce556f7d6f81",
        license=_MICRO_SAM_LICENSE, checkpoint_format="state_dict", key_mapper=_SAM_MAPPER,
        description="micro-sam ViT-B for electron microscopy (SAM ViT-B fine-tuned on EM data; "
                    "micro-sam v1 weights)",
    ),
    ModelSpec(
        name="mobile_sam", family="mobile_sam", task=PROMPTABLE,
        builder="napari_segany.models.mobile_sam:build_mobile_sam",
        file_name="mobile_sam.pt",
        urls=("https://github.com/ChaoningZhang/MobileSAM/raw/master/weights/mobile_sam.pt",),
        sha256="6dbb90523a35330fedd7f1d3dfc66f995213d81b29a5ca8108dbcdd4e37d6c2f",
        license="Apache-2.0", checkpoint_format="state_dict", key_mapper=_SAM_MAPPER,
        description="MobileSAM: TinyViT-5M encoder with SAM's decoder (41 MB)",
    ),
    ModelSpec(
        name="efficient_sam_vitt", family="efficient_sam", task=PROMPTABLE,
        builder="napari_segany.models.efficient_sam.build:build_efficient_sam_vitt",
        file_name="efficient_sam_vitt.pt",
        urls=("https://github.com/yformer/EfficientSAM/raw/main/weights/efficient_sam_vitt.pt",),
        license="Apache-2.0", checkpoint_format="efficient_sam",
        preprocessing="stretch", pixel_mean=IMAGENET_MEAN_01, pixel_std=IMAGENET_STD_01,
        supports_mask_input=False, single_mask_from_multimask=True,
        description="EfficientSAM ViT-Tiny (SAMI-pretrained, 10M parameters)",
    ),
    ModelSpec(
        name="efficient_sam_vits", family="efficient_sam", task=PROMPTABLE,
        builder="napari_segany.models.efficient_sam.build:build_efficient_sam_vits",
        file_name="efficient_sam_vits.pt",
        urls=("https://github.com/yformer/EfficientSAM/raw/main/weights/efficient_sam_vits.pt.zip",),
        license="Apache-2.0", checkpoint_format="efficient_sam",
        preprocessing="stretch", pixel_mean=IMAGENET_MEAN_01, pixel_std=IMAGENET_STD_01,
        supports_mask_input=False, single_mask_from_multimask=True,
        description="EfficientSAM ViT-Small (SAMI-pretrained, 26M parameters)",
    ),
    # SAM 2.1 (2024-09-28 release; configs/sam2.1/sam2.1_hiera_*.yaml of sam2 1.1.0).
    # sha256_reported for the tiny file (pinned by a third party, ../shared/checkpoints.json):
    # 7402e0d864fa82708a20fbd15bc84245c2f26dff0eb43a4b5b93452deb34be69, 156008466 bytes.
    _sam2("t", "t", "sam2.1_hiera_tiny.pt",
          "SAM 2.1 Hiera-Tiny (39M parameters, 156 MB): images and memory-based propagation"),
    _sam2("s", "s", "sam2.1_hiera_small.pt",
          "SAM 2.1 Hiera-Small (46M parameters): images and memory-based propagation"),
    _sam2("b+", "b_plus", "sam2.1_hiera_base_plus.pt",
          "SAM 2.1 Hiera-Base+ (81M parameters): images and memory-based propagation"),
    _sam2("l", "l", "sam2.1_hiera_large.pt",
          "SAM 2.1 Hiera-Large (224M parameters): images and memory-based propagation"),
    ModelSpec(
        name="fastsam_s", family="fastsam", task=INSTANCE,
        builder="napari_segany.models.yolo.build:build_yolov8",
        file_name="FastSAM-s.pt", urls=(_ULTRA_URL + "FastSAM-s.pt",),
        sha256="c9f78716a81c7aff0d608ccc73e1b82ab3aaad86005049f6a92106a0be6d0844",
        license="AGPL-3.0 (FastSAM weights)", checkpoint_format="ultralytics",
        key_mapper="napari_segany.models.yolo.keys:map_ultralytics_keys",
        preprocessing="letterbox", pixel_mean=(0.0, 0.0, 0.0), pixel_std=(255.0, 255.0, 255.0),
        supports_mask_input=False, file_signature={"has_proto": True, "scale": "s"},
        description="FastSAM-s: YOLOv8s-seg trained on SA-1B, all masks in one pass (23 MB)",
    ),
    ModelSpec(
        name="fastsam_x", family="fastsam", task=INSTANCE,
        builder="napari_segany.models.yolo.build:build_yolov8",
        file_name="FastSAM-x.pt", urls=(_ULTRA_URL + "FastSAM-x.pt",),
        license="AGPL-3.0 (FastSAM weights)", checkpoint_format="ultralytics",
        key_mapper="napari_segany.models.yolo.keys:map_ultralytics_keys",
        preprocessing="letterbox", pixel_mean=(0.0, 0.0, 0.0), pixel_std=(255.0, 255.0, 255.0),
        supports_mask_input=False, file_signature={"has_proto": True, "scale": "x"},
        description="FastSAM-x: YOLOv8x-seg trained on SA-1B (138 MB)",
    ),
    ModelSpec(
        name="mobilesamv2_objectaware", family="yolo_detector", task=DETECTOR,
        builder="napari_segany.models.yolo.build:build_yolov8",
        file_name="ObjectAwareModel.pt",
        builder_kwargs={"input_channel_order": "bgr"},  # MobileSAMv2 feeds BGR (see parity README)
        license="Apache-2.0 (MobileSAM project; YOLOv8 architecture)",
        checkpoint_format="ultralytics",
        key_mapper="napari_segany.models.yolo.keys:map_ultralytics_keys",
        preprocessing="letterbox", pixel_mean=(0.0, 0.0, 0.0), pixel_std=(255.0, 255.0, 255.0),
        supports_mask_input=False, file_signature={"has_proto": False},
        description="MobileSAMv2 object-aware box detector (YOLOv8, SA-1B boxes)",
        download_hint=(
            "No direct URL is published: download 'weight.zip' from the MobileSAMv2 README "
            "(Google Drive id 1dE-YAG-1mFCBmao2rHDp0n-PP4eH7SjE) and take ObjectAwareModel.pt from it"
        ),
    ),
)

REGISTRY: dict[str, ModelSpec] = {spec.name: spec for spec in _SPECS}


def get_spec(name: str | ModelSpec) -> ModelSpec:
    """Look a model up by name (a ModelSpec passes through unchanged)."""
    if isinstance(name, ModelSpec):
        return name
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise ValueError(f"Unknown model {name!r}. Choose one of: {known}.") from None


def list_models(task: str | None = None) -> list[str]:
    """Names of the registered models (the table ``load_model`` reads), optionally only those
    of one task."""
    return [name for name, spec in REGISTRY.items() if task is None or spec.task == task]
