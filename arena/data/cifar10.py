"""CIFAR-10 from its official python batches, unpickled without running any code.

The python version of CIFAR-10 (Krizhevsky, 2009; https://www.cs.toronto.edu/~kriz/cifar.html)
is six pickles, ``data_batch_1`` .. ``data_batch_5`` and ``test_batch``, each a dict with
``b"data"``, a uint8 array (10000, 3072) of rows R, G, B planes of 32x32, and ``b"labels"``,
a list of ints 0..9. A pickle can run any code when loaded, so these are read by an unpickler
that resolves only the globals a numpy array needs and refuses every other with a
:class:`DatasetError`; nothing in a refused file runs.

Python 3 writes bytes at pickle protocols 0 to 2 as a call, ``_codecs.encode(text,
"latin1")`` (and empty bytes as ``bytes()``), so a batch re-pickled at those protocols names
these two globals. The unpickler resolves them to stand-ins that accept only those arguments
and return the bytes; no other callable is ever reachable.
"""

from __future__ import annotations

import importlib
import io
import logging
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from arena.data.common import DatasetError, check_options, finish, split_train_val
from arena.data.splits import Split, Splits

logger = logging.getLogger(__name__)

TRAIN_FILES = tuple(f"data_batch_{k}" for k in range(1, 6))
TEST_FILE = "test_batch"
NUM_CLASSES = 10
EXPECTED = (
    "expected data_batch_1..data_batch_5 and test_batch (the python version of CIFAR-10), "
    "or the folder holding cifar-10-batches-py/"
)

_ARRAY_GLOBALS = {
    # module -> (module to import, allowed names). numpy 1.x pickles name numpy.core, numpy 2.x
    # pickles name numpy._core; both resolve to whichever this numpy has. ``_frombuffer`` is
    # how numpy writes arrays at pickle protocol 5.
    "numpy.core.multiarray": ("multiarray", {"_reconstruct"}),
    "numpy._core.multiarray": ("multiarray", {"_reconstruct"}),
    "numpy.core.numeric": ("numeric", {"_frombuffer"}),
    "numpy._core.numeric": ("numeric", {"_frombuffer"}),
    "numpy": ("", {"ndarray", "dtype"}),
}


def _numpy_global(module: str, name: str) -> Any:
    """The numpy object ``module.name`` if it is one an array needs, else ``None``."""
    entry = _ARRAY_GLOBALS.get(module)
    if entry is None or name not in entry[1]:
        return None
    if not entry[0]:
        return getattr(np, name)
    for prefix in ("numpy._core", "numpy.core"):
        try:
            return getattr(importlib.import_module(f"{prefix}.{entry[0]}"), name)
        except (ImportError, AttributeError):
            continue
    return None


_BYTES_GLOBALS = {("_codecs", "encode"), ("builtins", "bytes"), ("__builtin__", "bytes")}
"""How Python 3 pickles bytes at protocols 0 to 2; ``__builtin__`` is Python 2's spelling,
which Python 3 writes at those protocols."""
_LATIN1 = ("latin1", "latin-1", "iso-8859-1")


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, bytes, numbers and numpy arrays; refuses any other global."""

    def __init__(self, file: io.BufferedIOBase, source: Path) -> None:
        super().__init__(file, encoding="bytes")
        self._source = source

    def _bytes(self, *args: object) -> bytes:
        """Bytes as Python 3 pickles them at protocols 0 to 2: ``encode(text, "latin1")``, or
        ``bytes()`` for empty bytes; any other call is refused."""
        if not args:
            return b""
        if len(args) == 2 and isinstance(args[0], str) and args[1] in _LATIN1:
            try:
                return args[0].encode("latin1")
            except UnicodeEncodeError:
                pass  # not bytes written as latin-1 text: refused below
        shown = ", ".join(type(a).__name__ for a in args)
        raise DatasetError(
            f"refused to unpickle {self._source}: it calls a bytes constructor with ({shown}), "
            f"not latin-1 text as Python writes bytes; {EXPECTED}"
        )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _BYTES_GLOBALS:
            return self._bytes
        found = _numpy_global(module, name)
        if found is None:
            raise DatasetError(
                f"refused to unpickle {self._source}: it asks for {module}.{name}, and a "
                f"CIFAR-10 batch holds only arrays, lists and bytes; {EXPECTED}"
            )
        return found


def _read_batch(path: Path) -> Split:
    """One checked batch as images (N, 3, 32, 32) in [0, 1] and labels (N,)."""
    try:
        with path.open("rb") as handle:
            batch = _ArrayOnlyUnpickler(handle, path).load()
    except DatasetError:
        raise
    except Exception as error:  # a corrupt pickle raises many kinds of error
        raise DatasetError(f"{path} is not a readable pickle ({error}); {EXPECTED}") from error
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise DatasetError(f"{path} is not a CIFAR-10 batch (no b'data' and b'labels'); {EXPECTED}")
    data, labels = batch[b"data"], np.asarray(batch[b"labels"])
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        raise DatasetError(f"{path}: b'data' must be a uint8 array (N, 3072); {EXPECTED}")
    if data.shape[1] != 3 * 32 * 32 or labels.shape != (data.shape[0],):
        raise DatasetError(
            f"{path}: b'data' {data.shape} and b'labels' {labels.shape} do not make N images "
            f"of 3072 values with N labels; {EXPECTED}"
        )
    if labels.size and (labels.dtype.kind not in "iu" or labels.min() < 0 or labels.max() > 9):
        raise DatasetError(f"{path}: labels must be integers 0..9; {EXPECTED}")
    x = torch.from_numpy(data.reshape(-1, 3, 32, 32)).float().div_(255.0)
    return Split(x, torch.from_numpy(labels.astype(np.int64)))


def find_batches(path: str | Path) -> Path:
    """The folder holding the batches: ``path`` itself or its ``cifar-10-batches-py/``."""
    root = Path(path)
    if not root.is_dir():
        raise DatasetError(f"CIFAR-10 path {root} is not a folder; {EXPECTED}")
    for folder in (root, root / "cifar-10-batches-py"):
        if (folder / TEST_FILE).is_file() or (folder / TRAIN_FILES[0]).is_file():
            missing = [f for f in (*TRAIN_FILES, TEST_FILE) if not (folder / f).is_file()]
            if missing:
                raise DatasetError(f"missing {', '.join(missing)} in {folder}; {EXPECTED}")
            return folder
    raise DatasetError(f"no CIFAR-10 batches in {root}: {EXPECTED}")


def load_cifar10(
    path: str | Path, *, seed: int = 0, image_size: int | None = None, limit: int | None = None
) -> Splits:
    """CIFAR-10: train is the data batches less a seeded, stratified 10% val; test is test_batch."""
    check_options(image_size=image_size, limit=limit)
    folder = find_batches(path)
    batches = [_read_batch(folder / name) for name in TRAIN_FILES]
    train = Split(torch.cat([b.x for b in batches]), torch.cat([b.y for b in batches]))
    test = _read_batch(folder / TEST_FILE)
    splits = split_train_val("cifar10", train, test, num_classes=NUM_CLASSES, seed=seed)
    return finish(splits, seed=seed, image_size=image_size, limit=limit)
