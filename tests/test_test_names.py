"""Test modules have unique file names across folders: the folders are not packages, so
pytest imports each module by its base name, and a second `test_x.py` stops the whole
collection with "import file mismatch" (this has happened twice)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def test_every_test_module_has_a_name_no_other_folder_uses() -> None:
    places: dict[str, list[str]] = defaultdict(list)
    for path in TESTS.rglob("test_*.py"):
        places[path.name].append(str(path.relative_to(TESTS)))
    twice = {name: where for name, where in places.items() if len(where) > 1}
    assert not twice, f"rename one of each: {twice}"
