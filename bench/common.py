"""What the benchmark scripts share."""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))


def section(out: dict, key: str, fn, *args, **kwargs) -> None:
    """Run one measurement into out[key] (a float rounded to 0.1); a failure is recorded, not
    fatal, so one call yields every figure. Its time goes to stderr (the run's log)."""
    t0 = time.perf_counter()
    try:
        value = fn(*args, **kwargs)
        out[key] = round(value, 1) if isinstance(value, float) else value
    except Exception as exc:  # noqa: BLE001 - the report names it
        out[key] = f"failed: {type(exc).__name__}: {exc}"
    print(f"{key}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)


def settings(cls, **overrides):
    """A stage's typed settings from the schema's defaults and `overrides` (as the rules get them)."""
    from stemtomo.core.config import validate_config

    cfg = validate_config({"samples": {"b": {"simulate": {}}}, cls.SCHEMA: overrides})
    return cls.from_section(cfg[cls.SCHEMA])
