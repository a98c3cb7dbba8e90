"""Peak memory and time of ``load_model`` from an official-layout file, one fresh process per
load, alternating two source trees (e.g. main's ``src`` and an older checkout's).

    python benchmarks/bench_load_memory.py [--models sam_vit_b sam_vit_l] [--rounds 2]
        [--src NAME=PATH ...] [--json out.json]

The files are made from the model's own shapes (random values: pages read for real) in a
temporary folder.  Peak = the kernel's high-water mark of the process (``VmHWM``, reset just
before the load), minus the resident memory before it; given as a multiple of the weights.
After the load: the objects Python's collector tracks and how long one full collection of
them takes (the GUI's stall whenever Python runs one; a load that imports modules adds to
both for the rest of the session).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from bench_peak import load_average

_CHILD = """
import gc, importlib, sys, time, torch
import napari_segany as nsa
from napari_segany.models import registry
torch.set_num_threads(1)

def mem(field):
    return int(open("/proc/self/status").read().split(field + ":")[1].split()[0]) * 1024

importlib.import_module(registry.get_spec(sys.argv[1]).builder.split(":")[0])  # not measured
open("/proc/self/clear_refs", "w").write("5")
before, start = mem("VmRSS"), time.perf_counter()
nsa.load_model(sys.argv[1], checkpoint=sys.argv[2], device="cpu")
seconds = time.perf_counter() - start
growth = mem("VmHWM") - before
gc.collect()
start = time.perf_counter()
gc.collect()
print(len(gc.get_objects()), time.perf_counter() - start, growth, seconds)
"""


def weights_file(name: str, folder: Path) -> tuple[Path, int]:
    from napari_segany.models.registry import get_spec

    spec = get_spec(name)
    with torch.device("meta"):
        shapes = spec.build().state_dict()
    generator = torch.Generator().manual_seed(0)
    state = {k: torch.randn(v.shape, generator=generator).to(v.dtype) for k, v in shapes.items()}
    path = folder / spec.file_name
    torch.save(state, path)
    return path, sum(t.numel() * t.element_size() for t in state.values())


def measure(src: str, name: str, path: Path) -> tuple[int, float, int, float]:
    """(peak growth in bytes, load seconds, tracked objects after, full collection seconds)"""
    env = dict(os.environ, PYTHONPATH=src)
    out = subprocess.run([sys.executable, "-c", _CHILD, name, str(path)], env=env, check=True,
                         capture_output=True, text=True).stdout.split()
    return int(out[-2]), float(out[-1]), int(out[-4]), float(out[-3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["sam_vit_b", "sam_vit_l"])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--src", nargs="+", default=[f"this={Path(__file__).parents[1] / 'src'}"])
    parser.add_argument("--json")
    args = parser.parse_args()
    trees = dict(item.split("=", 1) for item in args.src)
    print(f"load average before: {load_average()}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            path, nbytes = weights_file(name, Path(tmp))
            for round_ in range(args.rounds):
                for tree, src in trees.items():  # alternating, same load for each tree
                    growth, seconds, objects, gc_s = measure(src, name, path)
                    rows.append(dict(model=name, tree=tree, round=round_, weights_mb=nbytes / 1e6,
                                     peak_growth_mb=growth / 1e6, times_weights=growth / nbytes,
                                     seconds=seconds, objects_after=objects,
                                     full_gc_ms=1000 * gc_s))
                    print(f"{name:12s} {tree:8s} weights {nbytes / 1e6:7.0f} MB  peak +"
                          f"{growth / 1e6:7.0f} MB ({growth / nbytes:.2f}x)  {seconds:6.2f} s  "
                          f"then {objects} objects, full gc {1000 * gc_s:.0f} ms", flush=True)
            path.unlink()
    print(f"load average after: {load_average()}")
    if args.json:
        Path(args.json).write_text(json.dumps(dict(load=load_average(), rows=rows), indent=1))


if __name__ == "__main__":
    main()
