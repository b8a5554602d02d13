"""The generated type stubs ship with the package and match the reviewed reference.

When the bindings change on purpose, rebuild and copy the stub the build
generated (``_core.pyi`` beside the extension) over ``stubs/_core.pyi.ref``,
then review the diff with the change. (Running stubgen by hand on the
imported module gives a different file: it sees the facade's classes too.)
"""

from pathlib import Path

import pyveda._core

STUBS = Path(__file__).parent / "stubs" / "_core.pyi.ref"


def test_stub_and_py_typed_are_installed():
    # Beside the extension (in an editable install the .py files live elsewhere).
    package = Path(pyveda._core.__file__).parent
    assert (package / "py.typed").is_file()
    assert (package / "_core.pyi").is_file()


def test_stub_matches_reference():
    installed = (Path(pyveda._core.__file__).parent / "_core.pyi").read_text()
    assert installed == STUBS.read_text(), (
        "pyveda/_core.pyi differs from tests/python/stubs/_core.pyi.ref: the binding API changed. "
        "Regenerate the reference (see this module's docstring) and review the diff."
    )
