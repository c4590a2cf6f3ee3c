"""Imported first by every rule script: puts workflow/ on sys.path, so that `stemtomo` imports
from this checkout without installing the project (Snakemake puts this folder on sys.path)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
