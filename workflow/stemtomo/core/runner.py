"""Glue between a rule's script and the library: logging into the rule's log, clean failures.

A script calls `run_rule(snakemake, main)`. stderr (tqdm progress, warnings) and log records go to
snakemake.log[0]; a StemtomoError becomes one clear message in the log and a non-zero exit, and the
rule's outputs (and the partial files of a killed earlier run) are removed so nothing half-made
looks finished. Every failure also ends the job's own stderr, which Snakemake shows on the terminal,
with the message (problem and fix), so it is seen without --show-failed-logs.

Retries: Snakemake 9 restarts a failed job whatever its exit status (`retries:` counts attempts,
nothing else), so the GPU rules declare `retries: 1` and pass the attempt number as the resource
`attempt`, and the runner decides: a retry after bad input or a bug fails at once with the first
attempt's message (a rerun cannot change it); only a GPU out-of-memory failure, or a job killed
from outside (no record), runs again. The record of a failed attempt lives under
.snakemake/stemtomo/failures/ in the working directory.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from .errors import StemtomoError
from .io import partial_path

log = logging.getLogger("stemtomo")

FAILURES = Path(".snakemake") / "stemtomo" / "failures"
RETRYABLE = {"gpu-oom"}  # what another attempt can change


def _remove_partials(paths: list[str]) -> None:
    """What a run killed while writing left beside its outputs (core.io.atomic_path)."""
    for p in paths:
        partial_path(p).unlink(missing_ok=True)


def _remove_outputs(paths: list[str]) -> None:
    for p in paths:
        if os.path.isfile(p):
            os.unlink(p)
    _remove_partials(paths)


def _describe(snakemake) -> str:
    wildcards = ", ".join(f"{k}={v}" for k, v in dict(snakemake.wildcards).items())
    return f"rule {snakemake.rule}" + (f" ({wildcards})" if wildcards else "")


def _tell(terminal: TextIO, text: str) -> None:
    """The last lines of the job's own stderr: Snakemake prints them on the terminal."""
    try:
        terminal.write(text.rstrip("\n") + "\n")
        terminal.flush()
    except (OSError, ValueError):
        pass


def _is_gpu_oom(exc: BaseException) -> bool:
    """torch.OutOfMemoryError (torch.cuda.OutOfMemoryError), or CUDA's own wording, without
    importing torch."""
    return type(exc).__name__ == "OutOfMemoryError" or "CUDA out of memory" in str(exc) or \
        "CUDA error: out of memory" in str(exc)


def _record_path(snakemake) -> Path:
    key = "\0".join([snakemake.rule, *map(str, snakemake.output)])
    return FAILURES / f"{snakemake.rule}-{hashlib.sha1(key.encode()).hexdigest()[:16]}.json"


def _pop_record(snakemake) -> dict | None:
    path = _record_path(snakemake)
    try:
        record = json.loads(path.read_text())
        path.unlink()
        return record
    except (OSError, ValueError):
        return None


def _write_record(snakemake, kind: str, message: str) -> None:
    path = _record_path(snakemake)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"kind": kind, "message": message}))
    except OSError:
        pass  # bookkeeping only: without it a retry simply runs


def _attempt(snakemake) -> int:
    try:
        return int(getattr(getattr(snakemake, "resources", None), "attempt", 1) or 1)
    except (TypeError, ValueError):
        return 1


def _open_log(snakemake, terminal: TextIO) -> TextIO:
    log_path = Path(snakemake.log[0])
    try:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        return open(log_path, "w", buffering=1)
    except OSError as exc:
        from .io import unwritable

        error = unwritable(log_path.parent, exc)
        _tell(terminal, f"stemtomo: {_describe(snakemake)} cannot start: "
                        f"{error or f'cannot write its log {log_path} ({exc})'}")
        sys.exit(1)


def run_rule(snakemake, main: Callable[[object], None]) -> None:
    """Run `main(snakemake)` with logging set up; exit 1 with a clean message on bad input."""
    terminal = sys.stderr
    stream = _open_log(snakemake, terminal)
    sys.stderr = stream
    logging.basicConfig(stream=stream, level=logging.INFO, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    t0 = time.perf_counter()
    attempt, previous = _attempt(snakemake), _pop_record(snakemake)
    log.info("rule %s, wildcards %s%s", snakemake.rule, dict(snakemake.wildcards),
             f", attempt {attempt}" if attempt > 1 else "")
    _remove_partials(list(snakemake.output))
    if attempt > 1 and previous and previous.get("kind") not in RETRYABLE:
        _not_retried(snakemake, previous, attempt, stream, terminal)
    try:
        main(snakemake)
    except StemtomoError as exc:
        _fail(snakemake, "input", str(exc), stream, terminal,
              f"stemtomo: {_describe(snakemake)} failed:\n{exc}")
        sys.exit(1)
    except BaseException as exc:
        log.exception("unexpected failure")
        kind = "gpu-oom" if _is_gpu_oom(exc) else "error"
        where = f"the traceback is in {snakemake.log[0]}"
        if kind == "gpu-oom":
            text = (f"stemtomo: {_describe(snakemake)} ran out of GPU memory ({exc})\n  fix: free "
                    "the GPU (nvidia-smi shows who holds it) or lower the job's memory use "
                    "(reconstruct.max_memory_fraction or reconstruct.slabs, train.batch_size, "
                    "segment.batch_size); GPU rules are retried once")
        else:
            text = (f"stemtomo: {_describe(snakemake)} failed unexpectedly: "
                    f"{type(exc).__name__}: {exc}\n  {where}; please report it with that log")
        _fail(snakemake, kind, f"{type(exc).__name__}: {exc}", stream, terminal, text)
        raise
    _add_provenance(snakemake)
    log.info("rule %s finished in %.1f s", snakemake.rule, time.perf_counter() - t0)


def _fail(snakemake, kind: str, message: str, stream: TextIO, terminal: TextIO, text: str) -> None:
    if kind == "input":
        log.error("%s", message)
    _remove_outputs(list(snakemake.output))
    _write_record(snakemake, kind, message)
    stream.flush()
    _tell(terminal, text + (f"\n  (log: {snakemake.log[0]})" if kind == "input" else ""))


def _not_retried(snakemake, previous: dict, attempt: int, stream: TextIO,
                 terminal: TextIO) -> None:
    """A retry that cannot help: fail at once with the first attempt's message."""
    why = "bad input" if previous["kind"] == "input" else "an unexpected error"
    text = (f"stemtomo: {_describe(snakemake)}: attempt {attempt} not run: attempt "
            f"{attempt - 1} failed on {why}, which running again cannot change:\n"
            f"{previous['message']}")
    log.error("%s", text)
    _write_record(snakemake, previous["kind"], previous["message"])
    stream.flush()
    _tell(terminal, text)
    sys.exit(1)


def _add_provenance(snakemake) -> None:
    """Every JSON sidecar the rule wrote gets a `provenance` record (version, packages, params)."""
    from .io import write_json
    from .provenance import record

    prov = record(snakemake)
    for path in snakemake.output:
        if str(path).endswith(".json") and os.path.isfile(path):
            data = json.loads(Path(path).read_text())
            if isinstance(data, dict):
                write_json(path, {**data, "provenance": prov})
