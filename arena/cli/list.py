"""``arena list``: attacks, defenses, models and datasets, with every search range."""

from __future__ import annotations

import argparse

from arena.cli.base import Command, emit_json


class ListCommand(Command):
    name = "list"
    help = "list attacks, defenses, models and datasets"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--json", action="store_true", help="one JSON object")

    def run(self, args: argparse.Namespace) -> int:
        from arena.report.catalog import catalog

        cat = catalog()
        if args.json:
            from arena.cell.provenance import stamped

            emit_json(stamped(cat))
            return 0
        from arena.report.cell import print_catalog

        print_catalog(cat)
        return 0
