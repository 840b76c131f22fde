"""The notebooks run top to bottom (small settings) in CI: an architect's walkthrough that
no longer executes is a broken deliverable."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


@pytest.mark.rtl
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes(path, tmp_path):
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    errors = [o for cell in nb.cells if cell.cell_type == "code"
              for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    nbformat.write(nb, tmp_path / path.name)    # the executed copy, for inspection


def test_there_is_a_notebook():
    assert NOTEBOOKS, "notebooks/ holds the design-space-exploration walkthrough"
