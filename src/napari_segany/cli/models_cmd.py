"""``napari-segany models`` and ``napari-segany download``: what is registered and cached."""
from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("models", help="list the registered models, their licenses and weights")
    p.set_defaults(run=run_models)
    d = sub.add_parser("download", help="download the official weights of models into the cache")
    d.add_argument("names", nargs="+", help="model names (see `napari-segany models`)")
    d.set_defaults(run=run_download, parser=d)


def run_models(args) -> int:
    from ..engine.weights import cache_dir, weights_present
    from ..models.registry import REGISTRY

    print(f"cache folder: {cache_dir()}")
    for name, spec in REGISTRY.items():
        state = "present" if weights_present(name) else "missing"
        print(f"{name:26s} {spec.task:10s} {state:8s} {spec.license:40s} {spec.description}")
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
