"""``arena cache``: the artifact cache's size per kind of artifact, and pruning it."""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from arena.cli.base import CLIError, Command, emit_json

if TYPE_CHECKING:
    from arena.core.cache import ArtifactCache, Entry

EPILOG = """\
The cache holds every artifact by content key, one folder per kind: clean models (clean),
BadNets (badnet), trained parts of attacks and defenses (generators, restorers, ...), fitted
defenses (fit), detectors' verdicts on the clean model (verdict) and payoff cells (cell).
Nothing in it is ever needed: whatever is removed is made again, at its cost, when asked for.

`arena cache` (or `arena cache info`) counts the files and bytes of each kind.
`arena cache prune` removes files, by either rule or both (both: what is old and unreferenced):
  --older-than AGE   files last written more than AGE ago (90s, 30m, 12h, 7d, 2w)
  --unreferenced     files no stored duel refers to: a duel.json under --duels-dir lists the
                     cells of its payoff matrix, its value's interval and its audit, and each
                     cell lists the models, parts, fits and verdicts it used; those are kept,
                     and so a stored duel replays without training. The cells of the studies'
                     trials are not kept (the Optuna storage keeps their values).
Prune while no duel is running on the cache: a running duel's new files are unreferenced.

examples:
  arena cache
  arena cache --json
  arena cache prune --older-than 30d --dry-run
  arena cache prune --unreferenced --duels-dir runs/duels
  arena cache prune --unreferenced --older-than 7d --cache s3://bucket/arena
"""

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
PRUNE_OPTIONS = ("--older-than", "--unreferenced", "--duels-dir", "--dry-run")


def age(text: str) -> float:
    """``--older-than``: a number and a unit (s, m, h, d or w), in seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if match is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an age; write a number and a unit: 90s, 30m, 12h, 7d or 2w"
        )
    return float(match[1]) * UNITS[match[2]]


def size(n: float) -> str:
    """Bytes for a person: ``512 B``, ``3.4 KiB``, ``1.2 GiB``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def tally(entries: Iterable[Entry]) -> dict[str, Any]:
    """``{"kinds": {kind: {"files", "bytes"}}, "total": {"files", "bytes"}}``."""
    kinds: dict[str, dict[str, int]] = {}
    for e in entries:
        row = kinds.setdefault(e.kind, {"files": 0, "bytes": 0})
        row["files"] += 1
        row["bytes"] += e.size
    total = {
        "files": sum(r["files"] for r in kinds.values()),
        "bytes": sum(r["bytes"] for r in kinds.values()),
    }
    return {"kinds": dict(sorted(kinds.items())), "total": total}


def table(counts: dict[str, Any]) -> str:
    """The per-kind counts as a plain-text table, with the total last."""
    rows = [(kind, r) for kind, r in counts["kinds"].items()] + [("total", counts["total"])]
    width = max(len("kind"), *(len(kind) for kind, _ in rows))
    lines = [f"{'kind':<{width}}  {'files':>7}  {'size':>10}"]
    lines += [f"{k:<{width}}  {r['files']:>7}  {size(r['bytes']):>10}" for k, r in rows]
    return "\n".join(lines)


class CacheCommand(Command):
    name = "cache"
    help = "report the artifact cache's size per kind of artifact, or prune it"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
        parser.epilog = EPILOG
        parser.add_argument(
            "action",
            nargs="?",
            choices=("info", "prune"),
            default="info",
            help="info (default): files and bytes per kind; prune: remove files (see below)",
        )
        parser.add_argument(
            "--cache",
            default="runs/cache",
            help="artifact cache: a directory or fsspec URL (default runs/cache)",
        )
        prune = parser.add_argument_group("prune")
        prune.add_argument(
            "--older-than",
            type=age,
            metavar="AGE",
            default=None,
            help="remove files last written more than AGE ago (90s, 30m, 12h, 7d, 2w)",
        )
        prune.add_argument(
            "--unreferenced",
            action="store_true",
            help="remove what no stored duel refers to (see below)",
        )
        prune.add_argument(
            "--duels-dir",
            action="append",
            metavar="DIR",
            default=None,
            help="folder searched for the stored duels' duel.json files (repeatable; "
            "default runs/duels)",
        )
        prune.add_argument(
            "--dry-run", action="store_true", help="list what would go, with sizes; remove nothing"
        )
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def run(self, args: argparse.Namespace) -> int:
        from arena.core.cache import ArtifactCache

        given = [
            o for o in PRUNE_OPTIONS if getattr(args, o[2:].replace("-", "_")) not in (None, False)
        ]
        if args.action == "info" and given:
            raise CLIError(f"{given[0]} is an option of `arena cache prune`, not of info")
        if args.action == "prune" and args.older_than is None and not args.unreferenced:
            raise CLIError(
                "say what to prune: --older-than AGE, --unreferenced, or both (what is old "
                "and unreferenced)"
            )
        if args.duels_dir and not args.unreferenced:
            raise CLIError("--duels-dir says where stored duels are, for --unreferenced; add it")
        cache = ArtifactCache(args.cache)
        if not cache.fs.isdir(cache.root):
            raise CLIError(
                f"there is no cache at {args.cache}; give --cache the folder or URL the runs "
                "used (default runs/cache)"
            )
        if args.action == "info":
            return self.info(cache, args)
        return self.prune(cache, args)

    def info(self, cache: ArtifactCache, args: argparse.Namespace) -> int:
        counts = tally(cache.entries())
        if args.json:
            from arena.cell.provenance import stamped

            emit_json(stamped({"cache": args.cache, **counts}))
        else:
            print(f"cache {args.cache}")
            print(table(counts))
        return 0

    def prune(self, cache: ArtifactCache, args: argparse.Namespace) -> int:
        from arena.duels.references import duel_files, prunable, references

        refs = None
        if args.unreferenced:
            refs = references(cache, duel_files(args.duels_dir or ["runs/duels"]))
        entries = list(cache.entries())
        gone = prunable(entries, now=time.time(), older_than=args.older_than, refs=refs)
        if not args.dry_run:
            cache.remove(gone)
        going = set(gone)
        removed, kept = tally(gone), tally(e for e in entries if e not in going)
        notes = []
        if refs is not None and refs.blind:
            notes.append(
                f"{len(refs.blind)} cell(s) the stored duels refer to were computed before cells "
                "listed what they use: every artifact but the cells was kept"
            )
        if args.older_than is not None and any(e.mtime is None for e in entries):
            notes.append("files whose modification time the filesystem does not keep were kept")
        if args.json:
            from arena.cell.provenance import stamped

            record = {
                "cache": args.cache,
                "dry_run": args.dry_run,
                "older_than_seconds": args.older_than,
                "unreferenced": args.unreferenced,
                "duels": [str(p) for p in refs.duels] if refs is not None else [],
                "removed": removed,
                "kept": kept,
                "files": [{"path": e.path, "kind": e.kind, "bytes": e.size} for e in gone],
                "notes": notes,
            }
            emit_json(stamped(record))
            return 0
        verb = "would remove" if args.dry_run else "removed"
        if args.dry_run:
            for e in gone:
                print(f"{verb} {e.path} ({size(e.size)})")
        total = removed["total"]
        by_kind = ", ".join(
            f"{kind} {r['files']} ({size(r['bytes'])})" for kind, r in removed["kinds"].items()
        )
        print(
            f"{verb} {total['files']} file(s), {size(total['bytes'])}, from {args.cache}"
            + (f": {by_kind}" if by_kind else "")
            + f"; kept {kept['total']['files']} file(s), {size(kept['total']['bytes'])}"
        )
        for note in notes:
            print(f"note: {note}")
        return 0
