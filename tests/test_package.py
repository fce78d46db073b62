"""The package surface: every advertised name resolves, and `import lesde` stays light."""

import subprocess
import sys

import lesde


def test_every_exported_name_resolves():
    missing = [n for n in lesde.__all__ if not hasattr(lesde, n)]
    assert missing == []
    assert callable(lesde.closed_form)


def test_import_does_not_load_torch():
    # Simulation and estimation must work without paying for torch; training imports it.
    code = "import sys, lesde; lesde.LEModel; lesde.solve_ode; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_unknown_attribute_names_the_attribute():
    import pytest

    with pytest.raises(AttributeError, match="no_such_thing"):
        lesde.no_such_thing  # noqa: B018
