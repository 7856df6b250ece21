"""Registering plugins without packaging: `register`, `unregister`, `registered`, and the
example of docs/plugins.md, run as it is written."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from descentlab.engine import registry
from descentlab.engine.plugin import Diagnostic, DiagnosticPlugin

DOCS = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"


def _plugin(pid: str = "test-nothing") -> DiagnosticPlugin:
    return DiagnosticPlugin(pid, "Nothing", "records nothing", (), Diagnostic)


def test_registered_adds_for_the_block_only() -> None:
    plugin = _plugin()
    assert "test-nothing" not in registry.plugins("diagnostics")
    with registry.registered(plugin):
        assert registry.get("diagnostics", "test-nothing") is plugin
        assert "hessian" in registry.plugins("diagnostics")  # packaged ones stay
    assert "test-nothing" not in registry.plugins("diagnostics")


def test_register_and_unregister() -> None:
    plugin = _plugin()
    registry.register(plugin)
    try:
        assert registry.plugins("diagnostics")["test-nothing"] is plugin
    finally:
        registry.unregister(plugin)
    assert "test-nothing" not in registry.plugins("diagnostics")
    with pytest.raises(KeyError, match="diagnostic 'test-nothing' was not added by register"):
        registry.unregister(plugin)


def test_taken_ids_and_non_plugins_are_refused() -> None:
    with pytest.raises(ValueError, match="diagnostic id 'hessian' is already registered"):
        registry.register(_plugin("hessian"))
    with pytest.raises(KeyError, match="'hessian' was not added by register"):
        registry.unregister(registry.get("diagnostics", "hessian"))
    with pytest.raises(TypeError, match="'sgd' is not a plugin; expected one of OptimizerPlugin"):
        registry.register("sgd")  # type: ignore[arg-type]
    twice = registry.registered(_plugin("test-a"), _plugin("test-a"))
    with pytest.raises(ValueError, match="already registered"), twice:
        pass
    assert "test-a" not in registry.plugins("diagnostics")  # the block leaves nothing behind


def test_the_documented_example_runs() -> None:
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("### Without packaging", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code[1], str(DOCS), "exec"), {})
    assert out.getvalue() == "finished\n"
    assert "my-plain-sgd" not in registry.plugins("optimizers")
