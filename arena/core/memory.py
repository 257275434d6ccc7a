"""Keep freed memory in the process for the next tensor of the same size.

glibc serves every allocation above its ``mmap`` threshold (at most 32 MiB after its own
adjustment) with a fresh ``mmap`` and returns it to the system when freed, so each large
tensor costs one page fault per 4 KiB page on first touch. Inference and inversion passes over
whole batches allocate and free tensors of tens to hundreds of MiB every step: ABS's patch
reversal on 16-pixel digits (48 MiB activations) spent about a third of its time in page faults,
4.0 M minor faults per six fits against 0.16 M with the thresholds below (bench/README.md,
"Page faults"). :func:`keep_freed_memory` raises glibc's ``mmap`` and trim thresholds with
``mallopt`` so that such tensors come from, and go back to, the process's heap.

The price is memory: a process keeps up to :data:`THRESHOLD` of freed heap instead of returning
it. Only glibc on Linux has ``mallopt``; elsewhere, or with ``ARENA_MALLOPT=0``, nothing
changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

log = logging.getLogger(__name__)

THRESHOLD = 512 << 20
"""Allocations below this come from the heap, and up to this much freed heap is kept."""
_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
_M_MMAP_THRESHOLD = -3
_done = False


def keep_freed_memory() -> bool:
    """Raise glibc's ``mmap`` and trim thresholds to :data:`THRESHOLD`, once per process;
    ``True`` if they are set (now or before)."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux") or os.environ.get("ARENA_MALLOPT", "1") == "0":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others: no mallopt
        return False
    _done = bool(mallopt(_M_MMAP_THRESHOLD, THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, THRESHOLD)
    )
    log.debug("glibc mmap and trim thresholds %s", "raised" if _done else "left as they were")
    return _done
