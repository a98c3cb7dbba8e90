"""The task graph of a batch as dask ``Delayed`` objects, finished tasks left out.

Per image (keys ``<kind>-<stem>[-<n>]``)::

    contrast ─> plane-k (every plane) ─> [link-u | track] ─> layout ─> relabel-u ─> finish
    contrast ─> embed-k                                                  (task embed)

A task whose marker exists is not in the graph: its recorded result stands in for it, so
a rerun of a finished batch computes nothing, and a resumed one only what is missing.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .image_tasks import finish_task, layout_task, link_task, relabel_task, track_task
from .markers import read_marker
from .plan import ImageJob
from .plane_tasks import TaskContext, contrast_task, embed_task, plane_task


@dataclass
class Graph:
    """``nodes``: key -> Delayed of the tasks to run; ``reused``: keys of finished tasks;
    ``finals``: image stem -> key (or recorded value) of its last task."""

    nodes: dict = field(default_factory=dict)
    reused: list = field(default_factory=list)
    finals: dict = field(default_factory=dict)


class _Builder:
    def __init__(self, ctx: TaskContext, graph: Graph):
        self.ctx, self.graph = ctx, graph

    def node(self, key: str, marker, function, *args, recorded=None):
        """The Delayed of a task, or its recorded result when its marker exists."""
        from dask import delayed

        data = read_marker(marker)
        if data is not None:
            self.graph.reused.append(key)
            return recorded(data) if recorded else data
        value = delayed(function, pure=False)(self.ctx, *args, dask_key_name=key)
        self.graph.nodes[key] = value
        return value


def build_graph(ctx: TaskContext, jobs: list[ImageJob], contrasts: dict) -> Graph:
    """The graph of ``jobs``; ``contrasts[stem]``: the contrast when known without reading
    (given, or uint8), else the string "read" (a contrast task)."""
    graph = Graph()
    builder = _Builder(ctx, graph)
    for job in jobs:
        contrast = contrasts[job.stem]
        if contrast == "read":
            contrast = builder.node(f"contrast-{job.stem}", job.marker("contrast"),
                                    contrast_task, job, recorded=lambda d: d["limits"])
        if ctx.settings.task == "embed":
            graph.finals[job.stem] = [
                builder.node(f"embed-{job.stem}-{k}", job.marker(f"embed-{k}"), embed_task,
                             job, k, contrast) for k in range(job.layout.n_planes)]
            continue
        graph.finals[job.stem] = _segmenting(builder, job, contrast)
    return graph


def _segmenting(b: _Builder, job: ImageJob, contrast):
    done = read_marker(job.marker("done"))
    if done is not None:  # the whole image: nothing to look at
        b.graph.reused.append(f"finish-{job.stem}")
        return done
    planes = [b.node(f"plane-{job.stem}-{k}", job.marker(f"plane-{k}"), plane_task, job, k,
                     contrast, recorded=lambda d: {"n": d["n"]})
              for k in range(job.layout.n_planes)]
    task = b.ctx.settings.task
    if task == "auto3d":
        units = [b.node(f"link-{job.stem}-{u}", job.marker(f"link-{u}"), link_task, job, u,
                        *(planes[k] for k in unit), recorded=lambda d: {"count": d["count"]})
                 for u, unit in enumerate(job.units)]
    elif task == "track":
        units = [b.node(f"track-{job.stem}", job.marker("link-0"), track_task, job, *planes,
                        recorded=lambda d: {"count": d["count"]})]
    else:
        units = planes
    layout = b.node(f"layout-{job.stem}", job.marker("layout"), layout_task, job, *units)
    relabelled = [b.node(f"relabel-{job.stem}-{u}", job.marker(f"relabel-{u}"), relabel_task,
                         job, u, layout) for u in range(len(job.units))]
    return b.node(f"finish-{job.stem}", job.marker("done"), finish_task, job, layout,
                  *relabelled)
