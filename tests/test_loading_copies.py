"""The loader releases its copy of the weights part by part (load_weights(consume=True)):
every tensor of the file must still reach the model, whatever map_keys returns."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import napari_segany as nsa
from _everything import TINY_SAM, random_state_dict


def _assert_loaded(model, state):
    ours = model.state_dict()
    mapped = model.spec.map_keys(dict(state))
    assert set(mapped) <= set(ours)
    for key, tensor in mapped.items():
        torch.testing.assert_close(ours[key], tensor.float(), rtol=0, atol=0, msg=key)


def test_weights_from_a_file_and_from_a_dict_reach_the_model(tmp_path):
    state = random_state_dict(TINY_SAM)
    path = tmp_path / "tiny.pt"
    torch.save(state, path)
    _assert_loaded(nsa.load_model(TINY_SAM, checkpoint=path, device="cpu"), state)
    given = dict(state)
    _assert_loaded(nsa.load_model(TINY_SAM, checkpoint=given, device="cpu"), state)
    assert given.keys() == state.keys()  # the caller's dict is left as it was


def test_a_given_dict_is_copied_not_taken_over():
    state = random_state_dict(TINY_SAM)
    model = nsa.load_model(TINY_SAM, checkpoint=state, device="cpu")
    key = next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 1)
    before = model.state_dict()[key].clone()
    state[key].add_(1.0)  # the caller's tensors stay the caller's
    torch.testing.assert_close(model.state_dict()[key], before, rtol=0, atol=0)


def test_a_file_is_read_into_the_network_not_mapped(tmp_path):
    """A network built on the meta device takes the file's tensors over: nothing is left on
    the meta device, and the file is not mapped (a truncated or copied-over file would crash
    a network whose weights were its pages)."""
    path = tmp_path / "tiny_sam_weights.pt"
    torch.save(random_state_dict(TINY_SAM), path)
    model = nsa.load_model(TINY_SAM, checkpoint=path, device="cpu")
    assert not any(t.is_meta for t in list(model.parameters()) + list(model.buffers()))
    maps = Path("/proc/self/maps")
    if maps.exists():
        assert str(path) not in maps.read_text()


_PEAK_SCRIPT = """
import sys, torch
import napari_segany as nsa
from napari_segany.models.sam import build  # imported before the measured part

def hwm():
    status = open("/proc/self/status").read()
    return int(status.split("VmHWM:")[1].split()[0]) * 1024

torch.set_num_threads(1)
open("/proc/self/clear_refs", "w").write("5")  # the peak starts again from the present
before = hwm()
nsa.load_model("sam_vit_b", checkpoint=sys.argv[1], device="cpu")
print(hwm() - before)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss in kB, glibc heap behaviour")
def test_loading_a_file_holds_one_copy_of_the_weights(tmp_path):
    """The peak memory of load_model grows by about one copy of the weights (ViT-B, 375 MB),
    not two (the file's and a randomly initialized network's)."""
    from napari_segany.models.sam.build import build_sam_vit_b

    path = tmp_path / "sam_vit_b.pth"
    with torch.device("meta"):
        shapes = build_sam_vit_b().state_dict()
    generator = torch.Generator().manual_seed(0)  # values, not zero pages: read for real
    state = {k: torch.randn(v.shape, generator=generator).to(v.dtype) for k, v in shapes.items()}
    torch.save(state, path)
    nbytes = sum(t.numel() * t.element_size() for t in state.values())
    del state
    out = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, str(path)], check=True,
                         capture_output=True, text=True).stdout
    growth = int(out.strip().splitlines()[-1])
    assert growth < 1.4 * nbytes, f"loading grew the peak by {growth / nbytes:.2f}x the weights"


def test_tensors_kept_as_plain_attributes_are_made(tmp_path):
    """A network that keeps a tensor as a plain attribute (no state dict holds it) is built
    the usual way once the meta-device build leaves that tensor without data."""
    from _fakes import FAKE_SPEC, FakePromptable

    path = tmp_path / "fake.pt"
    torch.save(FakePromptable().state_dict(), path)
    model = nsa.load_model(FAKE_SPEC, checkpoint=path, device="cpu")
    assert not model.scores.is_meta
    torch.testing.assert_close(model.scores, FakePromptable().scores)


@pytest.mark.parametrize("name", ["mobile_sam", "efficient_sam_vitt", "sam2.1_hiera_t"])
def test_a_meta_build_equals_the_usual_build(name, tmp_path, monkeypatch):
    """Every tensor of a network loaded on a meta build (non-persistent buffers such as
    TinyViT's attention-bias index included) equals that of the usual build."""
    from napari_segany.engine.weights import loading
    from napari_segany.models.registry import get_spec

    torch.manual_seed(0)
    state = get_spec(name).build().state_dict()
    path = tmp_path / "weights.pt"
    torch.save({"model": state} if name.startswith("efficient_sam") else state, path)

    def tensors(on_meta):
        monkeypatch.setattr(loading, "BUILD_ON_META", on_meta)
        model = nsa.load_model(name, checkpoint=path, device="cpu")
        return dict(model.named_buffers()) | dict(model.named_parameters())

    on_meta, usual = tensors(True), tensors(False)
    assert on_meta.keys() == usual.keys()
    for key, tensor in usual.items():
        assert not on_meta[key].is_meta, key
        torch.testing.assert_close(on_meta[key], tensor, rtol=0, atol=0, msg=key)


def test_a_meta_build_leaves_other_threads_and_later_work_on_the_cpu(tmp_path):
    """The meta device is a context of the loading thread only: a thread working meanwhile,
    and everything after the load, makes its tensors where it always did."""
    import threading

    path = tmp_path / "tiny.pt"
    torch.save(random_state_dict(TINY_SAM), path)
    devices, done = set(), threading.Event()

    def load():
        for _ in range(3):
            nsa.load_model(TINY_SAM, checkpoint=path, device="cpu")
        done.set()

    loader = threading.Thread(target=load)
    loader.start()
    while not done.is_set():
        devices |= {torch.zeros(1).device.type, torch.nn.Linear(2, 2).weight.device.type}
    loader.join()
    assert devices == {"cpu"} and torch.empty(1).device.type == "cpu"


def test_a_meta_build_imports_neither_sympy_nor_dynamo():
    """torch's Python references of ``normal_``, ``randn`` and arithmetic on the meta device
    import sympy and torch._dynamo: 800 modules and 120,000 objects that every later full
    garbage collection of the process walks (a longer stall of the viewer each time)."""
    code = (
        "import sys\n"
        "from napari_segany.engine.weights.meta_build import building_on_meta\n"
        "from napari_segany.models.registry import get_spec\n"
        "for name in ('sam_vit_b', 'mobile_sam', 'efficient_sam_vits', 'sam2.1_hiera_t'):\n"
        "    with building_on_meta():\n"
        "        net = get_spec(name).build()\n"
        "    assert any(t.is_meta for t in net.parameters()), name\n"
        "print(sorted(m for m in ('sympy', 'torch._dynamo') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("dtype", [torch.float32, torch.int64, torch.bool])
def test_meta_arithmetic_with_numbers_has_torchs_shape_and_type(dtype):
    from napari_segany.engine.weights.meta_build import building_on_meta

    operations = [lambda t: 2.5 * t, lambda t: t * 3, lambda t: t + 1, lambda t: 1 - t,
                  lambda t: t / 2, lambda t: 2 / t, lambda t: t ** 2, lambda t: t ** 0.5]
    if dtype != torch.bool:
        operations.append(lambda t: -t)
    for operation in operations:
        expected = operation(torch.empty((3, 4), dtype=dtype, device="meta"))
        with building_on_meta():
            ours = operation(torch.empty((3, 4), dtype=dtype))
        assert ours.is_meta and ours.shape == expected.shape and ours.dtype == expected.dtype


def test_random_fills_are_skipped_only_on_the_meta_device():
    from napari_segany.engine.weights.meta_build import building_on_meta

    with building_on_meta():
        drawn = 2.0 * torch.randn((2, 3))
        filled = torch.nn.init.normal_(torch.empty(4))
        on_cpu = torch.randn(5, device="cpu")
    assert drawn.is_meta and drawn.shape == (2, 3) and filled.is_meta
    assert on_cpu.device.type == "cpu" and on_cpu.std() > 0
    assert torch.randn(1000).std() > 0.5  # the context is gone
