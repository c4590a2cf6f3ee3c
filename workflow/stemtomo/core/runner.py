"""Glue between a rule's script and the library: logging into the rule's log, clean failures.

A script calls `run_rule(snakemake, main)`. stderr (tqdm progress, warnings) and log records go to
snakemake.log[0]; a StemtomoError becomes one clear message in the log and a non-zero exit, and the
rule's outputs are removed so nothing half-made looks finished.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from .errors import StemtomoError

log = logging.getLogger("stemtomo")


def _remove_outputs(paths: list[str]) -> None:
    for p in paths:
        if os.path.isfile(p):
            os.unlink(p)


def run_rule(snakemake, main: Callable[[object], None]) -> None:
    """Run `main(snakemake)` with logging set up; exit 1 with a clean message on bad input."""
    log_path = Path(snakemake.log[0])
    log_path.parent.mkdir(parents=True, exist_ok=True)
    stream = open(log_path, "w", buffering=1)
    sys.stderr = stream
    logging.basicConfig(stream=stream, level=logging.INFO, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    t0 = time.perf_counter()
    log.info("rule %s, wildcards %s", snakemake.rule, dict(snakemake.wildcards))
    try:
        main(snakemake)
    except StemtomoError as exc:
        log.error("%s", exc)
        _remove_outputs(list(snakemake.output))
        stream.flush()
        sys.exit(1)
    except BaseException:
        log.exception("unexpected failure")
        _remove_outputs(list(snakemake.output))
        raise
    _add_provenance(snakemake)
    log.info("rule %s finished in %.1f s", snakemake.rule, time.perf_counter() - t0)


def _add_provenance(snakemake) -> None:
    """Every JSON sidecar the rule wrote gets a `provenance` record (version, packages, params)."""
    import json

    from .io import write_json
    from .provenance import record

    prov = record(snakemake)
    for path in snakemake.output:
        if str(path).endswith(".json") and os.path.isfile(path):
            data = json.loads(Path(path).read_text())
            if isinstance(data, dict):
                write_json(path, {**data, "provenance": prov})
