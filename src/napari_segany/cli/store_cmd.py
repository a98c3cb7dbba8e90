"""``napari-segany store``: how big the embedding store is, per model; prune it to a size.

    napari-segany store                      # the user cache store: size per model
    napari-segany store --store emb/ --prune-to 5G
    napari-segany store --clear              # everything (the next use recomputes)

The store never deletes by itself (several sessions may share it); this is the way to keep
it in hand.  Pruning removes the least recently used slices first.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("store", help="show the embedding store's size; prune it",
                       description="Show the embedding store's size per model; prune it.")
    p.add_argument("--store", type=Path, help="store folder (default: the user cache store, "
                                              "as for `embed` and the widget)")
    action = p.add_mutually_exclusive_group()
    action.add_argument("--prune-to", metavar="SIZE",
                        help="delete the least recently used entries until the store holds at "
                             "most SIZE (e.g. 500M, 20G)")
    action.add_argument("--clear", action="store_true", help="delete every stored embedding")
    p.set_defaults(run=run_store, parser=p)


def run_store(args) -> int:
    from ..engine.embeddings import default_store_dir
    from ..engine.embeddings.housekeeping import format_size, parse_size
    from ..engine.embeddings import prune_store

    root = Path(args.store or default_store_dir()).expanduser()
    if args.store is not None and not root.is_dir():
        args.parser.error(f"--store {root}: no such folder.")
    limit = None
    if args.clear:
        limit = 0
    elif args.prune_to is not None:
        try:
            limit = parse_size(args.prune_to)
        except ValueError as exc:
            args.parser.error(f"--prune-to: {exc}")
    if limit is not None:
        deleted, left = prune_store(root, limit)
        freed = sum(entry.nbytes for entry in deleted)
        print(f"deleted {_entries(len(deleted)).strip()} ({format_size(freed)}); "
              f"{format_size(left)} left in {root}")
    _print_usage(root)
    return 0


def _print_usage(root: Path) -> None:
    from ..engine.embeddings.housekeeping import format_size
    from ..engine.embeddings import store_entries

    per_model: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for entry in store_entries(root):
        parts = entry.model.split("|")  # "name|sha256:..." or "name|bf16|sha256:..."
        name = parts[0] + (f" {parts[1]}" if len(parts) > 2 else "")
        per_model[name][0] += 1
        per_model[name][1] += entry.nbytes
    print(f"store: {root}")
    for name, (count, nbytes) in sorted(per_model.items()):
        print(f"  {name:26s} {_entries(count)} {format_size(nbytes):>11s}")
    total = sum(nbytes for _, nbytes in per_model.values())
    count = sum(c for c, _ in per_model.values())
    print(f"  {'total':26s} {_entries(count)} {format_size(total):>11s}")


def _entries(count: int) -> str:
    return f"{count:6d} {'entry  ' if count == 1 else 'entries'}"
