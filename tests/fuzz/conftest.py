"""The fuzz targets (fuzz/, at the repository root, not an installed package) importable from here."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
