"""Outputs under their final name are always complete: a writer killed with SIGKILL mid-write leaves
only its partial file, which the rule's next run removes; a folder that cannot take files gives a
message naming it, never a traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import tifffile

from stemtomo.core import io
from stemtomo.core.errors import OutputError
from stemtomo.core.precheck import check_results_writable, check_writable

ROOT = Path(__file__).resolve().parents[1]

# A rule job as Snakemake runs it: its own process, run_rule, one 6-page TIFF written page by page.
# With PAUSE=1 it stops after 3 pages (printing "writing") so that the test can kill it there.
JOB = textwrap.dedent("""
    import os, sys, time
    from types import SimpleNamespace
    sys.path.insert(0, sys.argv[1])
    import numpy as np, tifffile
    from stemtomo.core import io
    from stemtomo.core.errors import InputError
    from stemtomo.core.runner import run_rule

    def pages():
        for i in range(6):
            if i == 3 and os.environ.get("PAUSE"):
                print("writing", flush=True)
                time.sleep(60)
            yield np.full((256, 256), i, np.float32)

    def main(smk):
        if os.environ.get("BAD"):
            raise InputError("ts.mrc", "bad input", "fix it")
        with io.atomic_path(smk.output[0]) as tmp:
            tifffile.imwrite(tmp, pages(), shape=(6, 256, 256), dtype=np.float32, imagej=True)

    out = sys.argv[2]
    run_rule(SimpleNamespace(output=[out], log=[out + ".log"], rule="import_tiltseries",
                             wildcards={"sample": "s"}, params=SimpleNamespace()), main)
""")


def job(tmp_path: Path, **env) -> subprocess.Popen:
    script = tmp_path / "job.py"
    script.write_text(JOB)
    return subprocess.Popen([sys.executable, str(script), str(ROOT / "workflow"),
                             str(tmp_path / "results" / "tiltseries.tif")], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **env})


@pytest.mark.parametrize("rerun", ["succeeds", "fails on its input"])
def test_a_writer_killed_mid_write_leaves_nothing_after_the_rerun(tmp_path, rerun):
    out = tmp_path / "results" / "tiltseries.tif"
    partial = io.partial_path(out)
    writer = job(tmp_path, PAUSE="1")
    assert writer.stdout.readline() == "writing\n"
    assert partial.stat().st_size > 3 * 256 * 256 * 4  # three pages on disk
    writer.send_signal(signal.SIGKILL)
    assert writer.wait(timeout=30) == -signal.SIGKILL
    assert not out.exists() and partial.exists()  # what the kill left: only the partial file
    assert partial.name == ".tiltseries.tif.partial.tif"
    again = job(tmp_path, **({"BAD": "1"} if rerun != "succeeds" else {}))
    again.communicate(timeout=60)
    assert again.returncode == (0 if rerun == "succeeds" else 1)
    assert not partial.exists()
    left = sorted(p.name for p in out.parent.iterdir())
    if rerun == "succeeds":
        assert left == ["tiltseries.tif", "tiltseries.tif.log"]
        np.testing.assert_array_equal(tifffile.imread(out)[:, 0, 0], np.arange(6))
    else:
        assert left == ["tiltseries.tif.log"]


@contextmanager
def unwritable(folder: Path):
    """`folder` refuses new files for this user: read-only bits, or for root (whom permission bits
    do not stop) the immutable flag."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        folder.chmod(0o555)
        undo = ["chmod", "755", str(folder)]
    elif subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0:
        undo = ["chattr", "-i", str(folder)]
    else:
        pytest.skip("cannot make a folder unwritable for root here (no chattr)")
    try:
        yield folder
    finally:
        subprocess.run(undo, check=True)


def test_an_unwritable_output_folder_is_named_with_the_fix(tmp_path):
    with unwritable(tmp_path / "results"):
        with pytest.raises(OutputError) as e:
            io.write_json(tmp_path / "results" / "demo" / "00_import" / "meta.json", {"a": 1})
    assert e.value.source == str(tmp_path / "results")
    assert e.value.problem in ("cannot write results here (operation not permitted)",
                               "cannot write results here (permission denied)")
    assert f"chmod -R u+w {tmp_path / 'results'}" in e.value.fix and "--directory" in e.value.fix


def test_the_results_folder_is_checked_before_any_job(tmp_path):
    check_results_writable(tmp_path, ["demo"])  # nothing there yet: the working directory is
    assert not (tmp_path / "results").exists()  # checked, nothing is created
    (tmp_path / "results" / "demo" / "01_align").mkdir(parents=True)
    with unwritable(tmp_path / "results" / "demo" / "01_align"):
        with pytest.raises(OutputError, match="01_align: cannot write results here"):
            check_results_writable(tmp_path, ["demo"])
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError, match="file: is not a folder, so results cannot be written"):
        check_writable(tmp_path / "file" / "results")


def test_an_unwritable_log_folder_stops_the_job_with_a_message(tmp_path):
    with unwritable(tmp_path / "results"):
        writer = job(tmp_path)
        _, err = writer.communicate(timeout=60)
    assert writer.returncode == 1
    assert err.startswith("stemtomo: rule import_tiltseries (sample=s) cannot start: "
                          f"{tmp_path / 'results'}: cannot write results here (")
    assert "Traceback" not in err
