"""Rule glue: a failing rule leaves no output behind and says why in its log; a finished one
stamps its JSON sidecars with provenance."""

from __future__ import annotations

import json
import logging
import os
import sys
from types import SimpleNamespace

import pytest

from stemtomo.core.errors import InputError
from stemtomo.core.runner import run_rule


@pytest.fixture
def job(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "stderr", sys.stderr)  # run_rule redirects it into the log
    monkeypatch.chdir(tmp_path)  # failure records go under .snakemake/ of the working directory
    root = logging.getLogger()
    handlers = list(root.handlers)
    smk = SimpleNamespace(log=[str(tmp_path / "logs" / "x.log")], rule="x", wildcards={"sample": "s"},
                          output=[str(tmp_path / "out.tif"), str(tmp_path / "out.json")],
                          params=SimpleNamespace(items=lambda: {"settings": {"a": 1}}.items()))
    yield smk
    for h in root.handlers:
        if h not in handlers:
            root.removeHandler(h)
    root.handlers[:] = handlers


def write_outputs(smk) -> None:
    for path in smk.output:
        with open(path, "w") as fh:
            fh.write("{}")


def test_bad_input_exits_with_its_message_and_removes_the_outputs(job):
    def main(smk):
        write_outputs(smk)  # half-made outputs, as a job killed by bad data leaves them
        raise InputError("data/ts.mrc", "header says 3 images, file holds 2", "re-export the stack")

    with pytest.raises(SystemExit) as e:
        run_rule(job, main)
    assert e.value.code == 1
    assert not any(os.path.exists(p) for p in job.output)
    text = open(job.log[0]).read()
    assert "data/ts.mrc: header says 3 images, file holds 2" in text and "fix: re-export the stack" in text


def test_an_unexpected_failure_is_logged_reraised_and_leaves_no_output(job):
    def main(smk):
        write_outputs(smk)
        raise ZeroDivisionError("boom")

    with pytest.raises(ZeroDivisionError):
        run_rule(job, main)
    assert not any(os.path.exists(p) for p in job.output)
    assert "unexpected failure" in open(job.log[0]).read()


def test_a_finished_rule_stamps_its_json_with_provenance(job):
    run_rule(job, write_outputs)
    prov = json.loads(open(job.output[1]).read())["provenance"]
    assert prov["rule"] == "x" and prov["wildcards"] == {"sample": "s"}
    assert prov["params"]["settings"] == {"a": 1}
    assert "finished" in open(job.log[0]).read()


# --- the message on the terminal, and which failures a retry may run again -------------------------

def bad_input(smk):
    raise InputError("data/ts.mrc", "header says 3 images, file holds 2", "re-export the stack")


def test_the_message_also_ends_the_jobs_own_stderr(job, capsys):
    with pytest.raises(SystemExit):
        run_rule(job, bad_input)
    assert capsys.readouterr().err.endswith(
        "stemtomo: rule x (sample=s) failed:\ndata/ts.mrc: header says 3 images, file holds 2\n"
        f"  fix: re-export the stack\n  (log: {job.log[0]})\n")


def test_an_unexpected_failure_says_where_the_traceback_is(job, capsys):
    with pytest.raises(ZeroDivisionError):
        run_rule(job, lambda smk: 1 / 0)
    assert capsys.readouterr().err.endswith(
        "stemtomo: rule x (sample=s) failed unexpectedly: ZeroDivisionError: division by zero\n"
        f"  the traceback is in {job.log[0]}; please report it with that log\n")


def attempt(job, n):
    """The job as Snakemake starts attempt `n` of it (each attempt is a new process, whose stderr
    is the terminal)."""
    if not hasattr(job, "terminal"):
        job.terminal = sys.stderr
    sys.stderr = job.terminal
    job.resources = SimpleNamespace(attempt=n)
    return job


def test_a_retry_after_bad_input_fails_at_once_with_the_first_message(job, capsys):
    calls = []

    def main(smk):
        calls.append(1)
        bad_input(smk)

    with pytest.raises(SystemExit):
        run_rule(attempt(job, 1), main)
    with pytest.raises(SystemExit) as e:
        run_rule(attempt(job, 2), main)
    assert e.value.code == 1 and calls == [1]  # the second attempt did not run
    err = capsys.readouterr().err
    assert err.endswith("stemtomo: rule x (sample=s): attempt 2 not run: attempt 1 failed on bad "
                        "input, which running again cannot change:\ndata/ts.mrc: header says 3 "
                        "images, file holds 2\n  fix: re-export the stack\n")
    assert "attempt 2 not run" in open(job.log[0]).read()


def test_a_retry_after_a_bug_does_not_run_either(job):
    calls = []

    def main(smk):
        calls.append(1)
        raise KeyError("oops")

    with pytest.raises(KeyError):
        run_rule(attempt(job, 1), main)
    with pytest.raises(SystemExit):
        run_rule(attempt(job, 2), main)
    assert calls == [1]


class OutOfMemoryError(RuntimeError):  # the name torch.OutOfMemoryError has
    pass


def test_gpu_out_of_memory_and_a_killed_attempt_are_retried(job, capsys):
    calls = []

    def main(smk):
        calls.append(1)
        if len(calls) == 1:
            raise OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        write_outputs(smk)

    with pytest.raises(OutOfMemoryError):
        run_rule(attempt(job, 1), main)
    assert "ran out of GPU memory" in capsys.readouterr().err
    run_rule(attempt(job, 2), main)
    assert calls == [1, 1] and all(os.path.exists(p) for p in job.output)
    # A job killed from outside leaves no record: its retry runs.
    run_rule(attempt(job, 2), write_outputs)
    assert "finished" in open(job.log[0]).read()


def test_a_stale_record_does_not_stop_a_new_run(job):
    with pytest.raises(SystemExit):
        run_rule(attempt(job, 1), bad_input)  # an earlier `snakemake` call failed
    run_rule(attempt(job, 1), write_outputs)  # the user fixed the input and runs again
    assert all(os.path.exists(p) for p in job.output)


def test_partial_files_of_a_killed_run_are_removed_when_the_rule_starts(job):
    from stemtomo.core.io import partial_path

    leftovers = [partial_path(p) for p in job.output]
    for p in leftovers:
        p.write_bytes(b"half")
    with pytest.raises(SystemExit):
        run_rule(job, bad_input)  # even a run that fails before writing anything
    assert not any(p.exists() for p in leftovers)
