"""Executes a notebook with Debian's nbclient on the given kernel and writes the result."""
import sys

import nbformat
from nbclient import NotebookClient

src, out, kernel = sys.argv[1], sys.argv[2], sys.argv[3]
nb = nbformat.read(src, as_version=4)
NotebookClient(nb, kernel_name=kernel, timeout=300, resources={"metadata": {"path": sys.argv[4]}}).execute()
nbformat.write(nb, out)
