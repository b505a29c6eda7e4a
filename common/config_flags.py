"""A paper's `Config` dataclass as its command-line flags: each hyperparameter written once.

A field declared with `option(default, help)` becomes the flag `--FIELD` with that
default and help; `define_flags(Config)` defines them and `from_flags(Config)` builds
the config from the parsed values. The field's type annotation picks the flag's kind:

  bool -> boolean flag          int / float -> number flag
  str -> string flag, or an enum flag when `choices` are given
  str | None with none="none" -> a string flag whose value "none" means None
  Sequence[float] / Sequence[str] -> comma-separated list (None for an empty list
    when the field may be None)

A field declared without `option` (a plain default) is fixed by the paper and is not
a flag.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import types
import typing
from typing import Any, Sequence

from absl import flags

from common.errors import UserError

_HELP = "help"
_CHOICES = "choices"
_NONE = "none"


def option(default: Any, help: str, *, choices: Sequence[str] | None = None,
           none: str | None = None) -> Any:
    """A Config field that is also a flag.

    Args:
      default: the paper's value (an immutable one: a tuple, not a list).
      help: one line for --help.
      choices: the allowed values of a str field (an enum flag).
      none: for a `str | None` field, the flag value that stands for None.
    """
    return dataclasses.field(default=default,
                             metadata={_HELP: help, _CHOICES: choices, _NONE: none})


def flag_fields(config_cls) -> list[dataclasses.Field]:
    """The fields of `config_cls` declared with `option`, in declaration order."""
    return [f for f in dataclasses.fields(config_cls) if _HELP in f.metadata]


def _kind(hint) -> tuple[type, bool]:
    """(base type, may be None) of a field annotation; a sequence's base is its item type
    wrapped in a tuple, e.g. (float,)."""
    optional = False
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(members) < len(typing.get_args(hint))
        (hint,) = members
    origin = typing.get_origin(hint)
    if origin in (tuple, list, collections.abc.Sequence):
        return (typing.get_args(hint)[0],), optional
    return hint, optional


def _list_default(default) -> list[str]:
    # "1" rather than "1.0": a list flag's default reads as it would be typed.
    return [f"{v:g}" if isinstance(v, float) else str(v) for v in default or ()]


def define_flags(config_cls, values: flags.FlagValues = flags.FLAGS) -> None:
    """Defines one flag per `option` field of `config_cls`.

    The flags belong to the module that declares `config_cls` (absl would credit
    this one), so `--help` lists them as that paper's.
    """
    hints = typing.get_type_hints(config_cls)
    for field in flag_fields(config_cls):
        kind, _ = _kind(hints[field.name])
        help_text, choices = field.metadata[_HELP], field.metadata[_CHOICES]
        name, default = field.name, field.default
        where = {"flag_values": values, "module_name": config_cls.__module__}
        if isinstance(kind, tuple):
            flags.DEFINE_list(name, _list_default(default), help_text, **where)
        elif kind is bool:
            flags.DEFINE_boolean(name, default, help_text, **where)
        elif kind is int:
            flags.DEFINE_integer(name, default, help_text, **where)
        elif kind is float:
            flags.DEFINE_float(name, default, help_text, **where)
        elif kind is str and choices:
            flags.DEFINE_enum(name, default, list(choices), help_text, **where)
        elif kind is str:
            flags.DEFINE_string(name, default, help_text, **where)
        else:
            raise TypeError(f"{config_cls.__name__}.{name}: no flag kind for {kind!r}.")


def _from_list(name: str, items: list[str], item_type: type, optional: bool):
    if not items and optional:
        return None
    try:
        return tuple(item_type(item) for item in items)
    except ValueError as error:
        raise UserError(f"--{name} must be a comma-separated list of "
                        f"{'numbers' if item_type in (int, float) else 'values'}, got "
                        f"{','.join(items)!r}.") from error


def from_flags(config_cls, values: flags.FlagValues = flags.FLAGS):
    """`config_cls` built from the parsed flags of its `option` fields (the config
    validates the values itself)."""
    hints = typing.get_type_hints(config_cls)
    kwargs = {}
    for field in flag_fields(config_cls):
        kind, optional = _kind(hints[field.name])
        value = values[field.name].value
        if isinstance(kind, tuple):
            value = _from_list(field.name, value, kind[0], optional)
        elif field.metadata[_NONE] is not None and value == field.metadata[_NONE]:
            value = None
        kwargs[field.name] = value
    return config_cls(**kwargs)
