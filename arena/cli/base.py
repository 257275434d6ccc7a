"""What every command shares: the command base class, the one-line user error, JSON output."""

from __future__ import annotations

import argparse
import sys
from abc import ABC, abstractmethod
from typing import Any

from arena.core.jsonio import dumps


class CLIError(Exception):
    """A user error the CLI reports in one line and exits 2 for."""


class Command(ABC):
    name: str
    help: str

    @abstractmethod
    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    @abstractmethod
    def run(self, args: argparse.Namespace) -> int: ...


def emit_json(value: Any) -> None:
    """``value`` on stdout as valid JSON (:func:`arena.core.jsonio.json_safe`)."""
    sys.stdout.write(dumps(value, indent=2, sort_keys=True, default=str) + "\n")
