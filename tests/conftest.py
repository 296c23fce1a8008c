"""Shared fixtures: paths to the real test scans and small helpers."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
REAL_DATA_DIR = REPO_ROOT.parent / "shared" / "data" / "real"


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The real scans of ``../shared/data/real``; tests that need them skip on a clone without them."""
    if not REAL_DATA_DIR.is_dir():
        pytest.skip(f"real test scans not found at {REAL_DATA_DIR} (only present beside the project's CI checkout)")
    return REAL_DATA_DIR
