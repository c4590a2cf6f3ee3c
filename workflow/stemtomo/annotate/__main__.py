"""python -m stemtomo.annotate SAMPLE: annotate a sample's reconstruction in napari.

Opens results/SAMPLE/02_recon/volume.tif (or the sample's `volume:` file) with its annotations,
at the slices the networks disagree on most (results/SAMPLE/06_evaluate/suggestions.csv);
--prefill MODEL puts that network's segmentation on those slices for correction. Keys: s saves
into the sample's `labels:` file or folder (in its `label_values` encoding; nothing else is
written), n / p walk the suggested slices.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    import yaml

    from stemtomo.annotate.session import open_session
    from stemtomo.core.config import validate_config
    from stemtomo.core.errors import StemtomoError
    from stemtomo.core.readers import read_tiltseries

    parser = argparse.ArgumentParser(prog="python -m stemtomo.annotate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sample")
    parser.add_argument("--config", default="config.yaml", help="the workflow's config file")
    parser.add_argument("--results", default="results", help="the workflow's results folder")
    parser.add_argument("--prefill", metavar="MODEL", help="network whose segmentation fills the "
                        "suggested (or --slices) slices for correction")
    parser.add_argument("--slices", help="comma-separated z indices to open (and pre-fill)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        config = validate_config(yaml.safe_load(Path(args.config).read_text()))
        session = open_session(config, args.sample, args.results)
        if args.slices:
            session.suggestions = [int(z) for z in args.slices.split(",")]
        if args.prefill:
            seg = Path(args.results) / args.sample / "05_segment" / args.prefill / "labels.tif"
            session.prefill(read_tiltseries(seg).data, session.suggestions[:3])
    except StemtomoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not session.configured:
        print(f"note: samples.{args.sample} has no `labels:` yet; saving writes to "
              f"{session.target}/ — add `labels: {session.target}` to the sample in "
              f"{args.config}", file=sys.stderr)
    import napari

    from stemtomo.annotate.viewer import KEYS, open_viewer

    open_viewer(session)
    print("keys: " + "; ".join(f"{k}: {v}" for k, v in KEYS.items()), file=sys.stderr)
    napari.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
