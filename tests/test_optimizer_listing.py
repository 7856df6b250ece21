"""Listing the catalogue does not import the optimizer libraries (napari npe2's idea): the
descriptors come from `pto_manifest.json` and static schemas, and pytorch-optimizer and geoopt
are imported when one of their optimizers is built."""

from __future__ import annotations

import subprocess
import sys

from descentlab.engine.registry import plugins
from descentlab.plugins.optimizers import pto_records, pto_schema

LISTING = """
import sys
from descentlab.engine import registry
from descentlab.engine.catalogue import markdown
assert registry.load_failures("optimizers") == ()
markdown()
print(sorted(m for m in ("pytorch_optimizer", "geoopt", "scipy.optimize") if m in sys.modules))
"""


def test_listing_the_catalogue_imports_neither_library() -> None:
    """In a fresh interpreter, since this one has imported both already."""
    done = subprocess.run(
        [sys.executable, "-c", LISTING], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_the_manifest_is_what_the_installed_library_says() -> None:
    """pto_manifest.json must be regenerated when pytorch-optimizer changes."""
    assert pto_schema.MANIFEST.read_text(encoding="utf-8") == pto_schema.manifest_text(), (
        "plugins/optimizers/pto_manifest.json is stale: run "
        "`python -m descentlab.plugins.optimizers.pto_schema`"
    )


def test_the_manifest_round_trips_every_parameter() -> None:
    """Parameters read back from the JSON equal those read from the signatures."""
    _, entries = pto_schema.load_manifest()
    for name, cls in pto_schema.library_classes().items():
        want = pto_schema.describe(name, cls)
        got = entries[name]
        assert got.class_name == want["class"], name
        assert [p.__dict__ for p in got.params] == want["params"], name
        assert all(
            isinstance(p.default, tuple) for p in got.params if p.type in ("floats", "ints")
        ), name


def test_one_record_per_library_optimizer_sorted_by_name() -> None:
    """pto_records.py is found by name: one record each, in the manifest's order."""
    names = [r.name for r in pto_records.RECORDS]
    _, entries = pto_schema.load_manifest()
    assert names == sorted(entries)


def test_a_record_default_replaces_the_library_default() -> None:
    """Kate's record sets lr = 10⁻⁴; the manifest keeps the library's 10⁻³."""
    _, entries = pto_schema.load_manifest()
    (library_lr,) = [p.default for p in entries["kate"].params if p.name == "lr"]
    (lab_lr,) = [p.default for p in plugins("optimizers")["kate"].params if p.name == "lr"]
    assert (library_lr, lab_lr) == (1e-3, 1e-4)
