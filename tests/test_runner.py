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
