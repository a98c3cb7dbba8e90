"""``napari-segany models`` and ``napari-segany download``: what is registered and cached."""
from __future__ import annotations

import json


def add_parser(sub) -> None:
    p = sub.add_parser("models", help="list the registered models, their licenses and weights")
    p.add_argument("--json", action="store_true", help="print one JSON document (for scripts)")
    p.set_defaults(run=run_models)
    d = sub.add_parser("download", help="download the official weights of models into the cache")
    d.add_argument("names", nargs="+", help="model names (see `napari-segany models`)")
    d.set_defaults(run=run_download, parser=d)


def model_rows() -> list[dict]:
    """One dict per registered model: what ``models`` prints, as data."""
    from ..engine.weights import cached_path, weights_present
    from ..models.registry import REGISTRY

    return [{
        "name": name, "task": spec.task, "family": spec.family,
        "weights": "present" if weights_present(name) else "missing",
        "file": str(cached_path(name)), "license": spec.license,
        "description": spec.description, "urls": list(spec.urls), "sha256": spec.sha256,
    } for name, spec in REGISTRY.items()]


def format_table(rows: list[list[str]]) -> list[str]:
    """Columns padded to their widest cell; the last column is left ragged."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return ["  ".join([cell.ljust(w) for cell, w in zip(row, widths)] + [row[-1]]).rstrip()
            for row in rows]


def run_models(args) -> int:
    from ..engine.weights import cache_dir

    rows = model_rows()
    if args.json:
        print(json.dumps({"cache_folder": str(cache_dir()), "models": rows}, indent=1))
        return 0
    print(f"cache folder: {cache_dir()}")
    table = [["model", "task", "weights", "license", "description"]]
    table += [[r["name"], r["task"], r["weights"], r["license"], r["description"]] for r in rows]
    for line in format_table(table):
        print(line)
    return 0


def run_download(args) -> int:
    from ..engine.errors import WeightsNotFoundError
    from ..engine.weights import fetch_checkpoint, reword_remedy
    from ..models.registry import REGISTRY
    from .loading import option_for

    unknown = [name for name in args.names if name not in REGISTRY]
    if unknown:  # before any download starts
        args.parser.error(f"unknown model(s) {', '.join(unknown)}; choose among "
                          f"{', '.join(REGISTRY)} (see `napari-segany models`).")
    for name in args.names:
        try:
            print(f"{name}: {fetch_checkpoint(name)}")
        except WeightsNotFoundError as exc:
            raise reword_remedy(exc, f"give the file to a command with {option_for(name)} "
                                     f"/path/to/{getattr(exc, 'file_name', 'FILE')}") from None
    return 0
