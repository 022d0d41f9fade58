"""Where the record corpora live: the shared vectors beside the repository.

Failing to find the shared vectors fails the test with the path it looked at; it never skips."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent


def repo_root() -> Path:
    """The directory holding pyproject.toml, found upward from this file (not from the working directory)."""
    for directory in HERE.parents:
        if (directory / "pyproject.toml").is_file():
            return directory
    raise RuntimeError(f"no pyproject.toml above {HERE}")


def shared_vectors_dir() -> Path:
    """../shared/ocmf-vectors beside the repository, or $OCMF_VECTORS_DIR when set."""
    override = os.environ.get("OCMF_VECTORS_DIR")
    return Path(override) if override else repo_root().parent / "shared" / "ocmf-vectors"


def load_shared_vectors() -> list[dict[str, Any]]:
    directory = shared_vectors_dir()
    files = sorted(directory.glob("*.json")) if directory.is_dir() else []
    if not files:
        pytest.fail(
            f"OCMF vectors not found: {directory} is missing or holds no *.json "
            "(expected ../shared/ocmf-vectors beside the repository, or set OCMF_VECTORS_DIR)",
            pytrace=False,
        )
    vectors = []
    for path in files:
        vector = json.loads(path.read_text(encoding="utf-8"))
        missing = {"id", "ocmf", "public_key", "expected_valid"} - vector.keys()
        if missing:
            pytest.fail(f"{path}: vector lacks {sorted(missing)}", pytrace=False)
        vectors.append(vector)
    return vectors
