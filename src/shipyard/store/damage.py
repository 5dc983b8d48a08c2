"""One app's data that cannot be read: what counts as such damage, and how to tell the user."""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.fernet import InvalidToken
from sqlalchemy.exc import DBAPIError

from shipyard.store.integrity import AppDamaged, app_fix
from shipyard.store.records import AutoscaleBounds

# What reading a damaged row raises: bad JSON or text (ValueError), wrong types (TypeError), ciphertext
# that is not ours (InvalidToken), a column SQLite cannot hand over, e.g. text that is not UTF-8 (DBAPIError,
# of which is_damage keeps only that kind).
DAMAGE_ERRORS = (ValueError, TypeError, InvalidToken, DBAPIError)


def is_damage(exc: BaseException) -> bool:
    """A busy or broken database is no damage of one app: only a value SQLite could not decode is."""
    return not isinstance(exc, DBAPIError) or "Could not decode" in str(exc.orig)


def parse_formation(text: str | None) -> dict[str, int]:
    value = parse_json_object(text or "{}", "formation")
    if not all(isinstance(k, str) and type(v) is int for k, v in value.items()):
        raise TypeError("formation is not a JSON object of process counts")
    return value  # type: ignore[return-value]


def parse_autoscale(text: str | None) -> dict[str, AutoscaleBounds]:
    value = parse_json_object(text or "{}", "autoscale")
    bounds = {}
    for process_type, raw in value.items():
        if not isinstance(raw, dict):
            raise TypeError("autoscale is not a JSON object of bounds")
        low, high, target = raw.get("min"), raw.get("max"), raw.get("target")
        if type(low) is not int or type(high) is not int or not isinstance(target, (int, float)):
            raise TypeError(f"the autoscale bounds of {process_type} are not numbers")
        bounds[process_type] = AutoscaleBounds(low, high, float(target))
    return bounds


def parse_json_object(text: str | bytes, what: str = "it") -> dict[str, object]:
    try:
        value = json.loads(text)
    except ValueError as exc:  # bad JSON, or bytes that are no text at all
        raise ValueError(f"{what} is not valid JSON ({getattr(exc, 'msg', exc)})") from None
    if not isinstance(value, dict):
        raise TypeError(f"{what} is not a JSON object")
    return value


def require_int(value: object, what: str, optional: bool = False) -> int | None:
    if (value is None and optional) or type(value) is int:
        return value  # type: ignore[return-value]
    raise TypeError(f"{what} is {value!r}, not a number")


def describe_damage(part: str, exc: BaseException, data_dir: Path) -> str:
    """'<part> cannot be read: <why>. <the fix>' for the app's listing, its error and its log."""
    if isinstance(exc, InvalidToken):
        why = ("it cannot be decrypted with this data directory's secret.key (if that file was replaced, put the "
               "original back)")
    elif isinstance(exc, DBAPIError):
        why = str(exc.orig)
    else:
        why = str(exc) or type(exc).__name__
    return f"{part[0].upper()}{part[1:]} cannot be read: {why}. {app_fix(data_dir)}"


def app_damaged(name: str, damage: str) -> AppDamaged:
    return AppDamaged(f"App '{name}' is damaged in the store.", hint=damage)
