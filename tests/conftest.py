"""Shared fixtures: the parity data beside the repository and synthesized weights."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from _paths import PARITY

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


#: Synthesized weights kept between tests, in bytes: the small cases are asked for by many
#: modules; ViT-L / ViT-H (1.2 / 2.5 GB) are made again when needed rather than held all along
#: (holding every case lifted the suite's peak RSS above 6 GB).
SYNTH_CACHE_BYTES = 800e6


@pytest.fixture(scope="session")
def synth_state_dict(synth, parity_dir):
    """``synth_state_dict(case)`` -> the seed-0 weights of a case in the official key layout."""
    from collections import OrderedDict

    cache: OrderedDict[tuple[str, int], dict] = OrderedDict()

    def nbytes(state: dict) -> int:
        return sum(t.numel() * t.element_size() for t in state.values() if hasattr(t, "numel"))

    def make(case: str, seed: int = 0) -> dict:
        key = (case, seed)
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
        schema = synth.load_schema(parity_dir / case / "schema.json")
        state = synth.synth_state_dict(schema, seed=seed)
        size = nbytes(state)
        if size <= SYNTH_CACHE_BYTES:
            cache[key] = state
            while sum(nbytes(v) for v in cache.values()) > SYNTH_CACHE_BYTES:
                cache.popitem(last=False)
        return state

    return make


@pytest.fixture(autouse=True, scope="module")
def _free_between_modules():
    """Models and images of a module's fixtures are released before the next module starts,
    and the heap's free pages go back to the system (glibc keeps freed multi-MB weights in
    its arenas otherwise: about 1 GB after the ViT-L test)."""
    yield
    from _memory import return_free_memory

    return_free_memory()


#: Modules that hold the largest models run first, while the process is still small (the
#: GUI tests leave napari's own allocations behind).
LARGEST_FIRST = ("tests/models/test_sam_vit_l.py", "tests/models/test_sam_networks.py",
                 "tests/test_precision_accuracy.py")


def pytest_collection_modifyitems(config, items):
    def rank(item):
        path = item.nodeid.split("::")[0]
        return LARGEST_FIRST.index(path) if path in LARGEST_FIRST else len(LARGEST_FIRST)

    items.sort(key=rank)  # stable: the order within each group is kept


@pytest.fixture(autouse=True, scope="session")
def _two_threads():
    """Parity tolerances were measured with two threads."""
    import torch

    torch.set_num_threads(2)


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
