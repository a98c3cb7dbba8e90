"""Shared fixtures: the parity data beside the repository and synthesized weights."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from _paths import PARITY
from _suite import HEAVY

# The widgets and the command line start from precision "auto", which is bf16 on AMX CPUs:
# the suite pins fp32 so that it computes the same on every CPU (tests of the precision
# choice set what they need themselves).
os.environ.setdefault("NAPARI_SEGANY_PRECISION", "fp32")


def _load_synth():
    spec = importlib.util.spec_from_file_location("segany_parity_synth", PARITY / "synth.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def parity_dir() -> Path:
    if not (PARITY / "synth.py").exists():
        pytest.skip(f"parity data not found at {PARITY} (a user's clone has no ../shared)")
    return PARITY


@pytest.fixture(scope="session")
def synth(parity_dir):
    """The shared ``synth`` module (load_schema, synth_state_dict)."""
    return _load_synth()


#: Synthesized weights up to this size are kept between tests in a file of the session's
#: temporary folder and read back memory-mapped: the small cases are asked for by many modules,
#: and a mapped copy costs no resident memory once the model has copied it (holding them in
#: memory kept about 800 MB resident for the whole run).  ViT-L / ViT-H (1.2 / 2.5 GB) are made
#: again when needed.
SYNTH_FILE_BYTES = 800e6


@pytest.fixture(scope="session")
def synth_state_dict(synth, parity_dir, tmp_path_factory):
    """``synth_state_dict(case)`` -> the seed-0 weights of a case in the official key layout
    (a fresh dict each call: copy-on-write tensors, so a test may change them freely)."""
    import torch

    folder = tmp_path_factory.mktemp("synthesized")

    def nbytes(state: dict) -> int:
        return sum(t.numel() * t.element_size() for t in state.values() if hasattr(t, "numel"))

    def make(case: str, seed: int = 0) -> dict:
        path = folder / f"{case}-{seed}.pt"
        if path.exists():
            return torch.load(path, mmap=True, weights_only=True)
        schema = synth.load_schema(parity_dir / case / "schema.json")
        state = synth.synth_state_dict(schema, seed=seed)
        if nbytes(state) <= SYNTH_FILE_BYTES:
            torch.save(state, path)
        return state

    return make


#: The parity images by the names the case READMEs use.
PARITY_IMAGES = {"chelsea": "skimage_chelsea.png", "cell": "skimage_cell_rgb.png",
                 "coins_x4": "skimage_coins_x4nn_rgb.png"}


def parity_image(parity_dir: Path, name: str):
    """A parity image as (H, W, 3) uint8 RGB."""
    import numpy as np
    from PIL import Image

    return np.array(Image.open(parity_dir / "images" / PARITY_IMAGES[name]).convert("RGB"))


@pytest.fixture(scope="session")
def parity_embedding(parity_dir, synth_state_dict):
    """``parity_embedding(case, image)`` -> the float32 ``Embedding`` that ``Predictor.set_image``
    makes of a parity image with the case's seed-0 weights (loaded by ``load_model``), computed
    once per session: the ViT-B embedding of chelsea alone is needed by four modules, and each
    costs seconds.  The embedding is never changed in place by the code that decodes with it."""
    import napari_segany as nsa

    embeddings: dict = {}
    loaded = _PARITY_MODELS

    def get(case: str, image: str):
        if (case, image) not in embeddings:
            if case not in loaded:
                loaded.clear()
                loaded[case] = nsa.load_model(case, checkpoint=synth_state_dict(case),
                                              device="cpu")
            predictor = nsa.Predictor(loaded[case])
            predictor.set_image(parity_image(parity_dir, image))
            embeddings[case, image] = predictor.embedding
        return embeddings[case, image]

    return get


#: The model ``parity_embedding`` last loaded, kept until its module ends (a module asks for
#: the embeddings of one case after another).
_PARITY_MODELS: dict = {}


@pytest.fixture(autouse=True, scope="module")
def _free_between_modules():
    """Models and images of a module's fixtures are released before the next module starts,
    and the heap's free pages go back to the system (glibc keeps freed multi-MB weights in
    its arenas otherwise: about 1 GB after the ViT-L test)."""
    yield
    from _memory import return_free_memory

    _PARITY_MODELS.clear()
    return_free_memory()


def pytest_collection_modifyitems(config, items):
    def rank(item):
        path = item.nodeid.split("::")[0]
        return HEAVY.index(path) if path in HEAVY else len(HEAVY)

    for item in items:
        if item.nodeid.split("::")[0] in HEAVY:
            item.add_marker(pytest.mark.heavy)
    items.sort(key=rank)  # stable: the order within each group is kept


@pytest.fixture(autouse=True, scope="session")
def _two_threads():
    """Parity tolerances were measured with two threads; a pytest-xdist worker takes one
    (two workers share the two cores)."""
    import torch

    torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else 2)


@pytest.fixture
def one_thread():
    """Tiny encoders run 40x faster on one torch thread on a loaded 2-core machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    """The tiny test SAM (tests/_everything.py) with random weights, as an official-style file."""
    import torch

    from _everything import TINY_SAM, random_state_dict

    path = tmp_path_factory.mktemp("weights") / "tiny_sam.pt"
    torch.save(random_state_dict(TINY_SAM), path)
    return path


@pytest.fixture(scope="module")
def tiny_sam():
    """The tiny test SAM (tests/_everything.py), loaded with random weights."""
    from _everything import load_tiny

    return load_tiny()


@pytest.fixture(scope="module")
def random_fastsam():
    """A FastSAM-layout YOLOv8-n with random weights (tests/_everything.py)."""
    from _everything import load_random_yolo

    return load_random_yolo("fastsam_s")


if os.environ.get("NAPARI_SEGANY_TEST_MEMLOG"):  # where the memory goes: RSS after each test
    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logfinish(nodeid, location):
        import resource

        with open("/proc/self/statm") as statm:
            rss = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3
        with open(os.environ["NAPARI_SEGANY_TEST_MEMLOG"], "a") as log:
            log.write(f"{rss:8.0f} {peak:8.0f} {nodeid}\n")
