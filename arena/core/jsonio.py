"""JSON that is always valid: what Arena prints or writes never holds a bare ``NaN``."""

from __future__ import annotations

import json
import math
from typing import Any


def json_safe(value: Any) -> Any:
    """``value`` with every float that JSON cannot hold (NaN, infinities) made ``None``."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` of :func:`json_safe` ``(value)``, refusing anything else that is not
    JSON (``kwargs`` as for ``json.dumps``)."""
    return json.dumps(json_safe(value), allow_nan=False, **kwargs)
