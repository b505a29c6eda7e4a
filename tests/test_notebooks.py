"""The notebooks run top to bottom, in their fast mode, and show what they promise.

Each notebook is executed in a fresh python3 kernel with INPAINTING_NOTEBOOK_FAST=1
(tiny one-step or few-step runs in temporary folders), from the notebooks folder, as
Jupyter would run it. The notebooks are stored without outputs.
"""

import glob
import os
import sys
import tempfile
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS_DIR = os.path.join(REPO, "notebooks")
NOTEBOOKS = ("compare_methods.ipynb", "training_curves.ipynb", "masks.ipynb")
KERNEL = "python3"
CELL_TIMEOUT = 300  # seconds per cell
INSTALL_HINT = 'install the notebook tools with `pip install -e ".[dev]"`'


def _require_notebook_tools():
    """(nbclient, nbformat), or a failure saying how to install them and the python3 kernel."""
    try:
        import nbclient
        import nbformat
        from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
    except ImportError as error:
        pytest.fail(f"The notebook tests need nbclient, nbformat and ipykernel ({error}): "
                    f"{INSTALL_HINT}.")
    try:
        spec = KernelSpecManager().get_kernel_spec(KERNEL)
    except NoSuchKernel:
        pytest.fail(f"No {KERNEL!r} Jupyter kernel: {INSTALL_HINT} (ipykernel provides it).")
    # jupyter_client runs a bare "python" as the current interpreter; any other path must
    # be this environment's, or the kernel would not see the suite.
    program = spec.argv[0]
    bare = {"python", f"python{sys.version_info[0]}", "python%d.%d" % sys.version_info[:2]}
    if program not in bare and os.path.realpath(program) != os.path.realpath(sys.executable):
        pytest.fail(f"The {KERNEL!r} kernel ({spec.resource_dir}) runs {program}, not this "
                    f"environment's {sys.executable}: {INSTALL_HINT}, or run "
                    "`python -m ipykernel install --sys-prefix`.")
    return nbclient, nbformat


def _outputs(notebook):
    return [output for cell in notebook.cells if cell.cell_type == "code"
            for output in cell.get("outputs", [])]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_in_fast_mode(name, monkeypatch):
    nbclient, nbformat = _require_notebook_tools()
    # The kernel inherits the environment of this process.
    monkeypatch.setenv("INPAINTING_NOTEBOOK_FAST", "1")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    notebook = nbformat.read(os.path.join(NOTEBOOKS_DIR, name), as_version=4)
    client = nbclient.NotebookClient(notebook, kernel_name=KERNEL, timeout=CELL_TIMEOUT,
                                     resources={"metadata": {"path": NOTEBOOKS_DIR}})
    scratch_before = set(glob.glob(os.path.join(tempfile.gettempdir(), "compare_methods_*")))
    start = time.perf_counter()
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as error:
        pytest.fail(f"{name}: a cell failed:\n{error}")
    print(f"{name}: executed in {time.perf_counter() - start:.1f} s")

    outputs = _outputs(notebook)
    errors = [o for o in outputs if o.output_type == "error"]
    assert not errors, f"{name}: {errors[0].ename}: {errors[0].evalue}"
    assert any("image/png" in o.get("data", {}) for o in outputs), f"{name} drew no figure"
    if name == "compare_methods.ipynb":
        tables = [o["data"]["text/markdown"] for o in outputs if "text/markdown" in o.get("data", {})]
        assert any("PSNR" in table for table in tables), f"{name} showed no results table"
        # It cleans up after itself, and its saved output holds no progress bars.
        scratch = set(glob.glob(os.path.join(tempfile.gettempdir(), "compare_methods_*")))
        assert scratch <= scratch_before, f"{name} left {sorted(scratch - scratch_before)}"
        streams = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
        assert "%|" not in streams, f"{name} printed progress bars: {streams[-500:]}"


def test_notebooks_are_stored_without_outputs():
    _, nbformat = _require_notebook_tools()
    for name in NOTEBOOKS:
        notebook = nbformat.read(os.path.join(NOTEBOOKS_DIR, name), as_version=4)
        nbformat.validate(notebook)
        assert notebook.metadata.kernelspec.name == KERNEL, name
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, (
                    f"{name} is stored with outputs: clear them before committing")
