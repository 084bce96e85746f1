"""The one grammar of spec strings (``SCHEME:[TARGET,]key=value,...``) for sources, sinks and
data sets: items split once, values typed once (booleans 1/0, true/false, yes/no, on/off)."""

from __future__ import annotations

import dataclasses
import typing

from engines.errors import UserError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _convert(name: str, value, kind):
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE | _FALSE:
            return text in _TRUE
        raise UserError(f"option {name} must be a boolean (1/0, true/false), got {value!r}")
    if kind in (int, float):
        if isinstance(value, bool):
            raise UserError(f"option {name} must be a number, got {value!r}")
        try:
            return kind(value)
        except (TypeError, ValueError):
            raise UserError(f"option {name} must be {kind.__name__}, got {value!r}") from None
    return str(value)


def build_options(cls, raw: dict | None = None, **keywords):
    """An instance of the frozen dataclass ``cls``; unknown keys and bad values are a ValueError."""
    values = {**(raw or {}), **keywords}
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise UserError(f"unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(fields))}")
    try:
        return cls(**{k: _convert(k, v, hints[k]) for k, v in values.items()})
    except TypeError as exc:  # a required field is missing
        raise UserError(f"missing option: {exc}") from None


def parse_items(spec: str, rest: str, target: str | None) -> dict[str, str]:
    """``ITEM,ITEM,...`` after the scheme: ``key=value`` items plus at most one bare ``target``."""
    options: dict[str, str] = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, value = item.partition("=")
        if eq:
            if key.strip() in options:
                raise UserError(f"option {key.strip()!r} given twice in {spec!r}")
            options[key.strip()] = value.strip()
        elif target and target not in options:
            options[target] = item
        else:
            raise UserError(f"unexpected item {item!r} in spec {spec!r} (want key=value)")
    return options


def spec_options(spec: str, rest: str, types: dict[str, type], target: str | None = None) -> dict:
    """The typed ``key=value`` items after a spec's scheme; keys outside ``types`` refused."""
    items = parse_items(spec, rest, target)
    unknown = sorted(set(items) - set(types) - {target})
    if unknown:
        raise UserError(f"unknown option(s) {', '.join(unknown)} in {spec!r}; known: "
                        f"{', '.join(sorted(types))}")
    return {k: v if k == target else _convert(k, v, types[k]) for k, v in items.items()}
