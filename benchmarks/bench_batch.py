"""Batch throughput and overheads on this machine (``napari_segany.batch`` on dask).

    python benchmarks/bench_batch.py [--images 8] [--planes 2] [--side 256] [--quick]

* throughput: images/s and planes/s of ``batch everything`` (grid, 8 x 8 points, mobile_sam
  with random weights from a real-size checkpoint file) with ``synchronous`` (the reference:
  the work alone, in this process), ``local:1`` and ``local:2`` (LocalCluster processes);
* the work itself: ``segment_everything`` of one plane, called directly (no batch);
* per-task overhead of each dask scheduler: a graph of 2,000 empty tasks;
* bytes per task: the pickled arguments of one plane task (context + image job), and the
  time to pickle and unpickle them (serialisation);
* model load: seconds for one load (each worker loads once: counted on the workers);
* memory per worker: resident set of each worker process after the run.

Prints a table with the load average (the machine is shared: figures taken while others work
are noisy) and writes benchmarks/results/batch.json.  Run it as a script: the ``processes``
and ``local:N`` schedulers start processes that import this file's ``__main__`` guard.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent / "results" / "batch.json"
PARAMS = dict(points_per_side=8, pred_iou_thresh=0.0, stability_score_thresh=0.0)


def make_inputs(folder: Path, n: int, planes: int, side: int) -> Path:
    import tifffile

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for i in range(n):
        data = rng.normal(1000, 100, (planes, side, side)).astype(np.uint16)
        tifffile.imwrite(folder / f"field_{i:03d}.tif", data)
    return folder


def checkpoint(folder: Path, quick: bool) -> tuple[object, Path]:
    from napari_segany.models.registry import get_spec

    spec = get_spec("mobile_sam")
    if quick:
        import sys

        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from _everything import TINY_SAM

        spec = TINY_SAM
    torch.manual_seed(0)
    path = folder / "weights.pt"
    torch.save(spec.build().state_dict(), path)
    return spec, path


def scheduler_overhead(kind: str, n: int = 2000) -> float:
    """Seconds per empty task on ``kind`` (dask's own cost: graph, scheduling, transfer)."""
    import dask
    from dask import delayed

    tasks = [delayed(int, pure=False)(i) for i in range(n)]
    if kind.startswith("local:"):
        from distributed import Client, LocalCluster

        with LocalCluster(n_workers=int(kind[6:]), threads_per_worker=1, processes=True,
                          dashboard_address=":0") as cluster, Client(cluster) as client:
            client.compute(tasks[:10], sync=True)  # workers warm
            start = time.perf_counter()
            client.compute(tasks, sync=True)
            return (time.perf_counter() - start) / n
    start = time.perf_counter()
    dask.compute(*tasks, scheduler=kind)
    return (time.perf_counter() - start) / n


def bytes_per_task(spec, weights: Path, inputs: Path, out: Path) -> tuple[int, float]:
    """Pickled size of one plane task's arguments, and seconds to pickle + unpickle them."""
    import cloudpickle

    from napari_segany.engine.batch.plan import plan_image
    from napari_segany.engine.batch.plane_tasks import TaskContext
    from napari_segany.engine.batch.run import make_settings

    settings = make_settings("everything", dict(model=spec, checkpoint=weights, **PARAMS)).check()
    job = plan_image(sorted(inputs.iterdir())[0], out, settings, prepare=False)
    ctx = TaskContext(settings, settings.model_ref(), 1, str(out))
    args = (ctx, job, 0, [100.0, 2000.0])
    start = time.perf_counter()
    for _ in range(200):
        cloudpickle.loads(cloudpickle.dumps(args))
    return len(cloudpickle.dumps(args)), (time.perf_counter() - start) / 200


def run_batch(kind: str, inputs: Path, out: Path, spec, weights: Path) -> dict:
    import napari_segany as nsa

    start = time.perf_counter()
    summary = nsa.batch(inputs, out, scheduler=kind, model=spec, checkpoint=weights,
                        device="cpu", **PARAMS)
    wall = time.perf_counter() - start
    assert summary.ok, summary.table()
    return {"wall_s": wall, "tasks": summary.computed}


def worker_facts(n: int, inputs: Path, out: Path, spec, weights: Path) -> dict:
    """A LocalCluster of n processes: wall time, loads and memory per worker afterwards."""
    import psutil
    from distributed import Client, LocalCluster

    import napari_segany as nsa

    with LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        start = time.perf_counter()
        summary = nsa.batch(inputs, out, scheduler=cluster.scheduler_address, model=spec,
                            checkpoint=weights, device="cpu", **PARAMS)
        wall = time.perf_counter() - start
        assert summary.ok, summary.table()

        def facts():
            from napari_segany.engine.batch.workers import LOADS

            return LOADS["count"], psutil.Process().memory_info().rss / 2 ** 20

        seen = client.run(facts)
    return {"wall_s": wall, "tasks": summary.computed,
            "loads_per_worker": [v[0] for v in seen.values()],
            "rss_mib_per_worker": [round(v[1]) for v in seen.values()]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--planes", type=int, default=2)
    parser.add_argument("--side", type=int, default=256)
    parser.add_argument("--quick", action="store_true", help="tiny model, 4 images")
    args = parser.parse_args()
    n_images = 4 if args.quick else args.images
    rows, facts = {}, {"load_average_start": os.getloadavg(), "cores": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        spec, weights = checkpoint(tmp, args.quick)
        inputs = make_inputs(tmp / "in", n_images, args.planes, args.side)
        facts["model"] = spec.name
        facts["bytes_per_task"], facts["pickle_s_per_task"] = bytes_per_task(
            spec, weights, inputs, tmp / "probe")
        facts.update(direct_and_load(spec, weights, inputs))
        rows["synchronous"] = run_batch("synchronous", inputs, tmp / "sync", spec, weights)
        for n in (1, 2):
            rows[f"local:{n}"] = worker_facts(n, inputs, tmp / f"local{n}", spec, weights)
        facts["overhead_s_per_task"] = {k: scheduler_overhead(k) for k in
                                        ("synchronous", "threads", "local:2")}
    planes = n_images * args.planes
    for row in rows.values():
        row["images_per_s"], row["planes_per_s"] = n_images / row["wall_s"], planes / row["wall_s"]
    facts["load_average_end"] = os.getloadavg()
    print_table(rows, facts, n_images, planes)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"rows": rows, "facts": facts}, indent=1, default=str))


def direct_and_load(spec, weights: Path, inputs: Path) -> dict:
    import tifffile

    import napari_segany as nsa

    start = time.perf_counter()
    model = nsa.load_model(spec, checkpoint=weights, device="cpu")
    load = time.perf_counter() - start
    plane = tifffile.imread(sorted(inputs.iterdir())[0])[0]
    nsa.segment_everything(plane, model, contrast_limits=(700, 1300), **PARAMS)  # warm
    start = time.perf_counter()
    nsa.segment_everything(plane, model, contrast_limits=(700, 1300), **PARAMS)
    return {"model_load_s": load, "direct_plane_s": time.perf_counter() - start,
            "torch_threads": torch.get_num_threads()}


def print_table(rows: dict, facts: dict, n_images: int, planes: int) -> None:
    print(f"batch everything: {n_images} images, {planes} planes, model {facts['model']}; "
          f"load average {facts['load_average_start']} -> {facts['load_average_end']}")
    print(f"{'scheduler':12s} {'wall s':>8s} {'images/s':>9s} {'planes/s':>9s} {'tasks':>6s}  "
          "loads/worker  RSS MiB/worker")
    for name, row in rows.items():
        print(f"{name:12s} {row['wall_s']:8.2f} {row['images_per_s']:9.2f} "
              f"{row['planes_per_s']:9.2f} {row['tasks']:6d}  "
              f"{row.get('loads_per_worker', '-')!s:12s}  {row.get('rss_mib_per_worker', '-')}")
    print(f"one plane directly (segment_everything, {facts['torch_threads']} torch threads): "
          f"{facts['direct_plane_s']:.3f} s; model load {facts['model_load_s']:.2f} s; "
          f"{facts['bytes_per_task']} bytes pickled per plane task "
          f"({facts['pickle_s_per_task'] * 1e6:.0f} us to pickle + unpickle)")
    print("dask overhead per empty task: " + ", ".join(
        f"{k} {v * 1e3:.3f} ms" for k, v in facts["overhead_s_per_task"].items()))


if __name__ == "__main__":
    main()
