"""Markdown tables of evaluation results, and the README blocks that hold them.

`evaluate_all.py` and `faces_study.py` keep the tables of the documentation
current: each writes its table between `<!-- results:NAME:start -->` and
`<!-- results:NAME:end -->` of a Markdown file (--readme).
"""

from __future__ import annotations

import os
import re
from typing import Sequence

from common import atomic
from common import evaluation
from common.errors import UserError

_TABLE_COLUMNS = (("PSNR (dB)", "psnr", "{:.2f}"), ("SSIM", "ssim", "{:.4f}"),
                  ("L1 hole", "l1_hole", "{:.4f}"), ("L2 hole", "l2_hole", "{:.4f}"),
                  ("L1", "l1", "{:.4f}"))


# Shown only when some result has them (their weight files were found).
_PERCEPTUAL_COLUMNS = (("LPIPS (alex)", "lpips_alex", "{:.4f}"), ("LPIPS (vgg)", "lpips_vgg", "{:.4f}"),
                       ("FID", "fid", "{:.2f}"), ("KID", "kid", "{:.4f}"))


def _cell(value, form: str) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, dict):  # KID: mean and standard deviation over its subsets
        return f"{form.format(value['mean'])} ± {form.format(value['std'])}"
    return form.format(value)


def markdown_table(results: Sequence[dict]) -> str:
    """A Markdown table with one row per `evaluate` result: method, count and the overall
    metrics; LPIPS, FID and KID columns where any result has them.

    Raises:
      ValueError: if `results` is empty or a result lacks a field.
    """
    if not results:
        raise ValueError("markdown_table needs at least one evaluate() result.")
    columns = list(_TABLE_COLUMNS) + [
        column for column in _PERCEPTUAL_COLUMNS
        if any(column[1] in result.get("overall", {}) for result in results)]
    header = ["method", "images"] + [title for title, _, _ in columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for index, result in enumerate(results):
        missing = [k for k in ("method", "count", "overall") if k not in result]
        missing += [k for _, k, _ in _TABLE_COLUMNS if k not in result.get("overall", {})]
        if missing:
            raise ValueError(f"results[{index}] lacks {missing}: pass the dicts returned by evaluate().")
        cells = [str(result["method"]), str(result["count"])]
        cells += [_cell(result["overall"].get(key), form) for _, key, form in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def markdown_bins_table(results: Sequence[dict], metric: str = "psnr",
                        form: str = "{:.2f}") -> str:
    """A Markdown table of `metric` by hole-area bin: one row per `evaluate` result, one
    column per bin that any result has ("n/a" where a result has no image in it)."""
    bins = [b for b in evaluation.bin_names() if any(b in r["by_hole_area"] for r in results)]
    if not bins:
        raise ValueError("markdown_bins_table needs evaluate() results with images.")
    lines = ["| method | " + " | ".join(bins) + " |", "|" + "---|" * (len(bins) + 1)]
    for result in results:
        cells = [form.format(result["by_hole_area"][b][metric]) if b in result["by_hole_area"]
                 else "n/a" for b in bins]
        lines.append(f"| {result['method']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


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
