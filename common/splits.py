"""A fixed train / held-out split of a folder of photos, by a rule on the file name.

A photo is held out when the SHA-256 of its file name (not its path, so the
split survives moving the folder) falls in the first `percent` of the hash
range. The rule needs no list to be shipped, gives the same split on every
machine, and a file keeps its side when others are added or removed.
"""

from __future__ import annotations

import hashlib
import os

from common import image_files
from common.errors import UserError


def is_held_out(name: str, percent: int = 10) -> bool:
    """True if the photo called `name` (a file name, e.g. '1_0_0_2017.jpg') is held out."""
    if not 0 < percent < 100:
        raise UserError(f"The held-out percentage must be in (0, 100), got {percent}.")
    value = int.from_bytes(hashlib.sha256(os.path.basename(name).encode()).digest()[:8], "big")
    return value % 10_000 < percent * 100


def split_files(files: list[str], percent: int = 10) -> tuple[list[str], list[str]]:
    """(training files, held-out files), each sorted."""
    held_out = sorted(f for f in files if is_held_out(f, percent))
    held = set(held_out)
    return sorted(f for f in files if f not in held), held_out


def link_split(source: str, train_dir: str, held_out_dir: str,
               percent: int = 10) -> tuple[int, int]:
    """Fills two folders with symbolic links to the photos of `source`, one per side.

    Idempotent: links already there are kept, so rerunning it costs a listing.
    Returns (training count, held-out count).
    """
    files = image_files.find_image_files(source)
    if not files:
        raise UserError(f"No image in {source!r} to split.")
    train, held_out = split_files(files, percent)
    for folder, members in ((train_dir, train), (held_out_dir, held_out)):
        os.makedirs(folder, exist_ok=True)
        for path in members:
            link = os.path.join(folder, os.path.basename(path))
            if not os.path.lexists(link):
                os.symlink(os.path.abspath(path), link)
    return len(train), len(held_out)
