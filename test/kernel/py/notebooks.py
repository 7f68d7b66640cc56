"""Notebooks through the installed kernelspec: nbclient, `jupyter nbconvert --execute`, and
`jupyter console` fed from a pipe."""
import os
import subprocess
import sys

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

sys.path.insert(0, os.path.dirname(__file__))
from harness import KERNEL_NAME, done, expect, ok  # noqa: E402

work = sys.argv[1]


def notebook(*sources):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# tsloth")] + [nbformat.v4.new_code_cell(s) for s in sources]
    return nb


GOOD = notebook(
    "const xs: number[] = [1, 2, 3]\nconsole.log('sum', xs.reduce((a, b) => a + b))",
    "display({ 'text/html': '<b>bold</b>', 'text/plain': 'bold' })\nxs.map((x) => x * 10)",
    "%%writefile made-by-notebook.txt\ncontents\n",
)

# nbclient
nb = nbformat.from_dict(GOOD)
NotebookClient(nb, kernel_name=KERNEL_NAME, timeout=60, resources={"metadata": {"path": work}}).execute()
c1, c2, c3 = nb.cells[1], nb.cells[2], nb.cells[3]
expect(c1.outputs[0].output_type == "stream" and c1.outputs[0].text == "sum 6\n", c1.outputs)
expect(c2.outputs[0].output_type == "display_data" and c2.outputs[0].data["text/html"] == "<b>bold</b>", c2.outputs)
expect(c2.outputs[1].output_type == "execute_result" and c2.outputs[1].data["text/plain"] == "[ 10, 20, 30 ]", c2.outputs)
expect(os.path.exists(os.path.join(work, "made-by-notebook.txt")), "%%writefile ran in the notebook's directory")
nbformat.validate(nb)
ok("nbclient executes a notebook")

bad = notebook("const fine = 1", "fine.nope.deeper")
try:
    NotebookClient(nbformat.from_dict(bad), kernel_name=KERNEL_NAME, timeout=60).execute()
    expect(False, "a failing cell must raise")
except CellExecutionError as e:
    expect("TypeError" in str(e), str(e))
ok("nbclient reports a failing cell")

# jupyter nbconvert --execute
src = os.path.join(work, "convert-me.ipynb")
nbformat.write(nbformat.from_dict(GOOD), src)
subprocess.run(
    ["jupyter", "nbconvert", "--to", "notebook", "--execute", f"--ExecutePreprocessor.kernel_name={KERNEL_NAME}",
     "--output", "converted.ipynb", src],
    check=True, capture_output=True, text=True, timeout=120,
)
out = nbformat.read(os.path.join(work, "converted.ipynb"), as_version=4)
nbformat.validate(out)
expect(out.cells[2].outputs[1].data["text/plain"] == "[ 10, 20, 30 ]", out.cells[2].outputs)
ok("jupyter nbconvert --execute")

# jupyter console, non-interactive: lines on stdin, answers on stdout
def console_run():
    return subprocess.run(
        ["jupyter", "console", "--kernel", KERNEL_NAME, "--simple-prompt"],
        input="const c = 40 + 2\nc\nconsole.log(`got ${c}`)\n", capture_output=True, text=True, timeout=60, cwd=work,
    )


# A frontend that executes right after kernel_info (as jupyter console does) must still see the
# busy/idle of its first cell: the kernel holds iopub until the first subscription arrives.
console = console_run()
expect("Out[2]: 42" in console.stdout and "got 42" in console.stdout, console.stdout + console.stderr)
ok("jupyter console answers piped input")
done()
