"""Precision: the hardware rule (engine/precision.py, CPU flags monkeypatched) and the model
side (models/precision.py) on tiny networks of every family.  The accuracy of bfloat16
against float32 on the real architectures is tests/test_precision_accuracy.py."""
from __future__ import annotations

import copy

import pytest
import torch

from napari_segany.engine import precision as P
from napari_segany.models.efficient_sam.build import build_efficient_sam
from napari_segany.models.mobile_sam import build_mobile_sam
from napari_segany.models.precision import precision_of, set_encoder_precision
from napari_segany.models.sam.build import build_sam_vit
from napari_segany.models.yolo.build import build_yolov8

AMX_FLAGS = frozenset({"avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "amx_int8"})
AMD_FLAGS = frozenset({"avx512f", "avx512_bf16", "avx512_vnni"})  # this pool's EPYC: no AMX


@pytest.fixture
def linux_cpu(monkeypatch):
    """A Linux CPU whose flags the test chooses; ATen at its AVX-512 kernels; no ISA cap."""
    monkeypatch.setattr(P.platform, "system", lambda: "Linux")
    monkeypatch.setattr(P.torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)

    def with_flags(flags):
        monkeypatch.setattr(P, "cpu_flags", lambda path=P.CPUINFO: frozenset(flags))

    return with_flags


def test_auto_is_bf16_only_with_amx(linux_cpu):
    linux_cpu(AMX_FLAGS)
    assert P.resolve_precision("auto", "cpu") == "bf16"
    assert P.resolve_precision("auto") == "bf16"  # no device: CPU
    linux_cpu(AMD_FLAGS)
    assert P.resolve_precision("auto", torch.device("cpu")) == "fp32"


def test_explicit_requests_are_honoured_on_any_cpu(linux_cpu):
    linux_cpu(AMD_FLAGS)
    assert P.resolve_precision("bf16", "cpu") == "bf16"
    linux_cpu(AMX_FLAGS)
    assert P.resolve_precision("fp32", "cpu") == "fp32"


@pytest.mark.parametrize("system", ["Darwin", "Windows"])
def test_auto_is_fp32_off_linux(linux_cpu, monkeypatch, system):
    linux_cpu(AMX_FLAGS)
    monkeypatch.setattr(P.platform, "system", lambda: system)
    assert P.resolve_precision("auto", "cpu") == "fp32"


def test_auto_respects_capped_isas(linux_cpu, monkeypatch):
    linux_cpu(AMX_FLAGS)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")
    assert P.resolve_precision("auto", "cpu") == "fp32"
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX")
    assert P.resolve_precision("auto", "cpu") == "bf16"
    monkeypatch.setattr(P.torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert P.resolve_precision("auto", "cpu") == "fp32"


def test_auto_on_other_devices(monkeypatch):
    assert P.resolve_precision("auto", "mps") == "fp32"
    monkeypatch.setattr(P, "_cuda_has_native_bf16", lambda: True)
    assert P.resolve_precision("auto", "cuda") == "bf16"
    monkeypatch.setattr(P, "_cuda_has_native_bf16", lambda: False)
    assert P.resolve_precision("auto", "cuda:0") == "fp32"


def test_unknown_request_is_refused():
    with pytest.raises(ValueError, match="fp32, bf16, auto"):
        P.resolve_precision("fp16", "cpu")


def test_cpu_flags_parses_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx512f amx_bf16\nbugs\t\t: x\n"
                    "processor\t: 1\nflags\t\t: fpu\n")
    assert P.cpu_flags(str(info)) == {"fpu", "avx512f", "amx_bf16"}
    assert P.cpu_flags(str(tmp_path / "missing")) == frozenset()


# ------------------------------------------------------------------ the model side
def _tiny_models():
    torch.manual_seed(0)
    return {
        "sam": build_sam_vit(64, 2, 2, (1,), image_size=256).eval(),
        "mobile_sam": build_mobile_sam(image_size=256).eval(),
        "efficient_sam": build_efficient_sam(192, 3, image_size=256).eval(),
    }


@pytest.mark.parametrize("family", ["sam", "mobile_sam", "efficient_sam"])
def test_bf16_encoder_returns_fp32_close_to_fp32(family, one_thread):
    model = _tiny_models()[family]
    bf16 = set_encoder_precision(copy.deepcopy(model), "bf16")
    assert (precision_of(model), precision_of(bf16)) == ("fp32", "bf16")
    encoder = bf16.image_encoder
    dtypes = {name: p.dtype for name, p in encoder.named_parameters()}
    assert torch.bfloat16 in dtypes.values()
    # norms and positional tables stay float32; the decoder is untouched
    assert all(dt == torch.float32 for name, dt in dtypes.items()
               if "norm" in name or "pos" in name or "attention_biases" in name)
    assert all(p.dtype == torch.float32 for p in bf16.mask_decoder.parameters())
    x = torch.randn(1, 3, 256, 256)
    with torch.inference_mode():
        ref, out = model.encode(x), bf16.encode(x)
    assert out.dtype == torch.float32 and out.shape == ref.shape
    assert out.stride() == ref.stride()  # same memory layout for the decoder
    rel = ((out - ref).norm() / ref.norm()).item()
    assert rel < 0.05, rel  # random weights: bf16 rounding, not a wrong computation


def test_sam2_bf16_encoder_image_and_video_paths(one_thread):
    """SAM 2: Hiera + FPN neck in bfloat16 (its positional tables float32), every level and
    the video path's features returned in float32, close to float32."""
    from _sam2_tiny import load_tiny_sam2

    model = load_tiny_sam2()
    bf16 = set_encoder_precision(copy.deepcopy(model), "bf16")
    trunk = bf16.image_encoder.trunk
    assert trunk.patch_embed.proj.weight.dtype == torch.bfloat16
    assert trunk.pos_embed.dtype == trunk.pos_embed_window.dtype == torch.float32
    x = torch.randn(1, 3, model.image_size, model.image_size)
    with torch.inference_mode():
        pairs = list(zip(model.encode(x), bf16.encode(x)))
        ref, out = model.encode_frame(x), bf16.encode_frame(x)
    pairs += [(ref.vision, out.vision), (ref.vision_pos, out.vision_pos),
              *zip(ref.high_res, out.high_res)]
    for a, b in pairs:
        assert b.dtype == torch.float32 and b.shape == a.shape
        rel = ((b - a).norm() / a.norm()).item()
        assert rel < 0.05, rel  # random weights: bf16 rounding, not a wrong computation


def test_tiny_vit_bf16_fast_and_reference_paths_agree(one_thread):
    model = set_encoder_precision(_tiny_models()["mobile_sam"], "bf16")
    encoder = model.image_encoder
    x = torch.randn(1, 3, 256, 256)
    with torch.inference_mode():
        assert encoder.uses_fast_path()
        fast = encoder(x)
    with torch.no_grad():
        encoder.fast_inference = False
        reference = encoder(x)
    rel = ((fast - reference).norm() / reference.norm()).item()
    assert rel < 0.05, rel


def test_tiny_vit_runs_under_autocast_on_its_reference_path(one_thread):
    encoder = _tiny_models()["mobile_sam"].image_encoder
    x = torch.randn(1, 3, 256, 256)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert not encoder.uses_fast_path()
        out = encoder(x)
    assert torch.isfinite(out).all()


def test_yolo_bf16_outputs_fp32_and_channels_last(one_thread):
    torch.manual_seed(0)
    model = build_yolov8("n").eval().fuse()
    bf16 = set_encoder_precision(copy.deepcopy(model), "bf16")
    assert bf16.channels_last and bf16.precision == "bf16"
    assert bf16.head.dfl.conv.weight.dtype == torch.float32  # boxes decode in float32
    x = torch.rand(1, 3, 128, 160)
    with torch.inference_mode():
        (pred, protos), (pred16, protos16) = model(x), bf16(x)
    assert pred16.dtype == protos16.dtype == torch.float32
    # box rows (input pixels): bf16 features, float32 decoding -> sub-pixel differences
    assert (pred16[:, :4] - pred[:, :4]).abs().max() < 2.0


def test_precision_changes_are_one_way():
    model = _tiny_models()["sam"]
    assert set_encoder_precision(model, "fp32") is model  # already fp32: nothing changes
    set_encoder_precision(model, "bf16")
    set_encoder_precision(model, "bf16")  # idempotent
    with pytest.raises(ValueError, match="load the model again"):
        set_encoder_precision(model, "fp32")
    with pytest.raises(ValueError, match="precision must be one of"):
        set_encoder_precision(model, "fp16")


def test_load_model_applies_the_precision_and_keys_embeddings_by_it(tmp_path, monkeypatch):
    """load_model(precision=...) -> model.precision; bf16 embeddings get their own cache key."""
    import napari_segany as nsa
    from napari_segany.engine import precision as P
    from napari_segany.engine.embeddings.keys import model_identity

    from _everything import TINY_SAM, random_state_dict

    weights = random_state_dict(TINY_SAM)
    fp32 = nsa.load_model(TINY_SAM, checkpoint=weights, device="cpu")
    bf16 = nsa.load_model(TINY_SAM, checkpoint=weights, device="cpu", precision="bf16")
    assert fp32.precision == "fp32" and bf16.precision == "bf16"
    assert model_identity(bf16) != model_identity(fp32)
    assert "|bf16|" in model_identity(bf16) and "|bf16|" not in model_identity(fp32)
    monkeypatch.setattr(P, "cpu_has_fast_bf16", lambda: True)  # as on an AMX machine
    assert nsa.load_model(TINY_SAM, checkpoint=weights, device="cpu", precision="auto").precision == "bf16"
    monkeypatch.setattr(P, "cpu_has_fast_bf16", lambda: False)
    assert nsa.load_model(TINY_SAM, checkpoint=weights, device="cpu", precision="auto").precision == "fp32"


def test_default_precision_of_the_front_ends(monkeypatch):
    from napari_segany.engine.precision import PRECISION_ENV, default_precision

    monkeypatch.delenv(PRECISION_ENV, raising=False)
    assert default_precision() == "auto"
    monkeypatch.setenv(PRECISION_ENV, "FP32")
    assert default_precision() == "fp32"
    monkeypatch.setenv(PRECISION_ENV, "half")
    with pytest.raises(ValueError, match=PRECISION_ENV):
        default_precision()
