"""The core everything else stands on: config fields and their ranges, ``KEY=VALUE`` overrides,
the artifact cache, devices, safe model files, inference and the one training loop.

With :mod:`arena.data`, :mod:`arena.models` and :mod:`arena.game` it is the bottom layer: it
imports nothing from the strategies, the cell, the studies, the duel, the reports or the CLI
(docs/architecture.md).
"""
