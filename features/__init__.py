"""meter-hil's conformance suite as a pytest plugin (`pytest11` entry point `meter_hil`).

After `pip install meter-hil`, `pytest --rig my-bench.toml` in any repository runs the official
scenarios (the .feature files here) next to that repository's own feature files and steps; the report
keeps the two apart and only the official scenarios decide the verdict. Installed as the package
`meter_hil_suite` (the source directory is features/). This module stays light: pytest imports it.
"""

from pathlib import Path

SUITE_DIR = Path(__file__).resolve().parent
SCENARIOS_MODULE = SUITE_DIR / "scenarios.py"
"""The module holding the official scenarios: give its path to pytest to run the suite alone."""


def is_official(feature_file: str | Path) -> bool:
    """True for a .feature file shipped with meter-hil (an official scenario)."""
    return Path(feature_file).resolve().parent == SUITE_DIR
