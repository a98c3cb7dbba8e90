"""``napari-segany models`` and ``napari-segany download``: what is registered and cached."""
from __future__ import annotations

import json

#: How each file is verified, in the words of the table (see engine.weights.ledger).
CHECKS = {
    "published": "sha256 published",
    "recorded": "sha256 recorded at first download",
    "unrecorded": "no published sha256: recorded at first download",
}


def add_parser(sub) -> None:
    p = sub.add_parser("models", help="list the registered models, their licenses and weights")
    p.add_argument("--json", action="store_true", help="print one JSON document (for scripts)")
    p.set_defaults(run=run_models)
    d = sub.add_parser("download", help="download the official weights of models into the cache")
    d.add_argument("names", nargs="*", help="model names (see `napari-segany models`)")
    d.add_argument("--hashes", action="store_true",
                   help="print the sha256 and size of the files (the ones named, else every "
                        "cached one) for comparing them with a published or a colleague's digest")
    d.set_defaults(run=run_download, parser=d)


def model_rows() -> list[dict]:
    """One dict per registered model: what ``models`` prints, as data."""
    from ..engine.weights import cached_path, verification, weights_present
    from ..models.registry import REGISTRY

    return [{
        "name": name, "task": spec.task, "family": spec.family,
        "weights": "present" if weights_present(name) else "missing",
        "check": CHECKS[verification(name)],
        "file": str(cached_path(name)), "license": spec.license,
        "description": spec.description, "urls": list(spec.urls), "sha256": spec.sha256,
    } for name, spec in REGISTRY.items()]


def format_table(rows: list[list[str]]) -> list[str]:
    """Columns padded to their widest cell; the last column is left ragged."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return ["  ".join([cell.ljust(w) for cell, w in zip(row, widths)] + [row[-1]]).rstrip()
            for row in rows]


def auto_precision() -> dict:
    """What ``--precision auto`` resolves to on this machine's default device."""
    from ..engine.precision import resolve_precision
    from ..engine.weights import default_device

    device = default_device()
    return {"device": device.type, "precision": resolve_precision("auto", device)}


def run_models(args) -> int:
    from ..engine.weights import cache_dir

    rows = model_rows()
    auto = auto_precision()
    if args.json:
        print(json.dumps({"cache_folder": str(cache_dir()), "auto_precision": auto,
                          "models": rows}, indent=1))
        return 0
    print(f"cache folder: {cache_dir()}")
    table = [["model", "task", "weights", "check", "license", "description"]]
    table += [[r["name"], r["task"], r["weights"], r["check"], r["license"], r["description"]]
              for r in rows]
    for line in format_table(table):
        print(line)
    print(f"--precision auto: {auto['precision']} on this machine ({auto['device']}; bf16 only "
          "where it is fast: AMX-BF16 CPUs, bf16 CUDA GPUs)")
    return 0


def run_download(args) -> int:
    from ..engine.errors import WeightsNotFoundError
    from ..engine.weights import fetch_checkpoint, reword_remedy
    from ..models.registry import REGISTRY
    from .loading import option_for

    if not args.names and not args.hashes:
        args.parser.error("name the models to download (see `napari-segany models`).")
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
    if args.hashes:
        print_hashes(args.names)
    return 0


def print_hashes(names: list[str]) -> None:
    """sha256, size and where the digest comes from, for the named (else all cached) files."""
    from ..engine.weights import cached_path, read_ledger, sha256_of, weights_present
    from ..engine.weights.ledger import verify_file
    from ..models.registry import REGISTRY

    table = [["model", "sha256", "bytes", "source of the check"]]
    for name in names or [n for n in REGISTRY if weights_present(n)]:
        path = cached_path(name)
        if not path.is_file():
            table.append([name, "-", "-", "not downloaded"])
            continue
        record, published = read_ledger(path.parent).get(path.name), REGISTRY[name].sha256
        if published:
            verify_file(path, published, "the published sha256")
        digest = published or (record.sha256 if record else sha256_of(path))
        source = ("published by the authors" if published else
                  f"recorded {record.recorded} from {record.source}" if record else "not recorded yet")
        table.append([name, digest, str(path.stat().st_size), source])
    for line in format_table(table):
        print(line)
