"""The README blocks that hold the benchmarks' result tables.

`evaluate_all.py` and `faces_study.py` keep the tables of the documentation
current: each writes its table (`common.evaluation.markdown_table`) between
`<!-- results:NAME:start -->` and `<!-- results:NAME:end -->` of a Markdown
file (--readme).
"""

from __future__ import annotations

import os
import re

from common import atomic
from common.errors import UserError

def replace_results_block(text: str, name: str, block: str) -> str:
    """Replaces the text of a Markdown file between `<!-- results:NAME:start -->` and
    `<!-- results:NAME:end -->` (how the benchmarks keep README's tables current)."""
    start, end = f"<!-- results:{name}:start -->", f"<!-- results:{name}:end -->"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise UserError(f"--readme has no {start} ... {end} markers.")
    return pattern.sub(lambda _: f"{start}\n{block}\n{end}", text)


def check_results_block(path: str, name: str) -> None:
    """Raises a UserError unless `path` is a Markdown file with the markers of block `name`
    (checked before hours of work, not after)."""
    if not os.path.isfile(path):
        raise UserError(f"--readme {path!r} is not a file.")
    with open(path, encoding="utf-8") as f:
        replace_results_block(f.read(), name, "")


def write_results_block(path: str, name: str, block: str) -> None:
    """Replaces block `name` of the Markdown file `path` by `block`, atomically."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    atomic.write_text(path, replace_results_block(text, name, block))
