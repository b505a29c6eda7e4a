"""A run's `flags.cfg`: the resolved flags, written so that `--flagfile=` relaunches it.

Reading and writing the file, with the quoting that keeps a value with spaces
at either end (flagfile lines are stripped when read). Expanding the
--flagfile arguments of a command line is `common.cli`'s.
"""

from __future__ import annotations

import json
import os

from common import atomic
from common.errors import UserError


def quote_flag_line(line: str) -> str:
    """`line` ("--name=value") as a flagfile keeps it: a value with white space at
    either end, or that starts with a double quote, is written as a JSON string
    ("--workdir=\"runs/a \""), since flagfile lines are stripped when read."""
    name, equals, value = line.partition("=")
    if equals and (value != value.strip() or value.startswith('"')):
        return f"{name}={json.dumps(value)}"
    return line


def unquote_flag_line(line: str) -> str:
    """The inverse of `quote_flag_line` for a stripped flagfile line."""
    name, equals, value = line.partition("=")
    if equals and len(value) >= 2 and value.startswith('"') and value.endswith('"'):
        try:
            return f"{name}={json.loads(value)}"
        except ValueError:
            pass
    return line


def write_flagfile(path: str, lines: tuple[str, ...]) -> None:
    """Writes resolved flag lines so that `train.py --flagfile=PATH` relaunches the run."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    atomic.write_text(path, "# Resolved flags of this run; relaunch with --flagfile=" + path
                      + "\n" + "\n".join(quote_flag_line(line) for line in lines) + "\n")


def read_text_lines(path: str, what: str) -> list[str]:
    """The lines of a UTF-8 text file, or a UserError naming it when it is not text."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.readlines()
    except UnicodeDecodeError as error:
        raise UserError(f"{what}{path} is not UTF-8 text (byte {error.start}): a flagfile holds "
                        "one --name=value per line.") from error


def parse_flag_lines(lines) -> dict[str, str]:
    """name -> value of "--name=value" lines; an older flags.cfg's "--name" and
    "--noname" booleans become "true" and "false"."""
    values = {}
    for line in lines:
        line = unquote_flag_line(line.strip())
        if not line.startswith("--"):
            continue
        name, equals, value = line[2:].partition("=")
        if equals:
            values[name] = value
        elif name.startswith("no"):
            values[name] = "true"
            values.setdefault(name[2:], "false")  # whichever of the two names the flag has
        else:
            values[name] = "true"
    return values


def read_flagfile(path: str) -> dict[str, str]:
    """The flags a run recorded in its flags.cfg (empty if there is none)."""
    if not os.path.exists(path):
        return {}
    return parse_flag_lines(read_text_lines(path, ""))
