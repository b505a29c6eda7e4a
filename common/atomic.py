"""Whole-file writes that a crash cannot leave half done.

Each writer puts the content in `PATH.tmp` next to the target, syncs it to disk,
then renames it over `PATH` (`os.replace`, atomic on POSIX file systems): a
reader sees the old file or the new one, never a part, and a crash mid-write
leaves the old file in force (a write that fails removes its temporary file).
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Iterator

SUFFIX = ".tmp"


@contextlib.contextmanager
def replacing(path: str) -> Iterator[str]:
    """Yields the temporary path to write; on a clean exit, syncs it and renames it to
    `path`; on an exception, removes it and leaves `path` as it was."""
    tmp = path + SUFFIX
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_text(path: str, text: str) -> None:
    """Replaces `path` by `text` (UTF-8) in one step."""
    with replacing(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)


def write_json(path: str, data, indent: int | None = 2) -> None:
    """Replaces `path` by `data` as JSON (a final newline), in one step."""
    write_text(path, json.dumps(data, indent=indent) + "\n")
