"""Idempotency: does server-side applying a rendered object change the live one? Judged by spec, never by
resourceVersion: an object needs applying when a field the renderer sets differs from the live object, or when
Shipyard's field manager owns a field the renderer no longer sets (server-side apply would remove it). Fields the
server adds (defaults, status, other managers' fields) never count.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from shipyard.runtime.kubernetes.model import KubeObject

_SUFFIXES = {"": 1, "m": Decimal("0.001"), "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "Ki": 2**10,
             "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
_QUANTITY = re.compile(r"(\d+(?:\.\d+)?)(m|k|M|G|T|Ki|Mi|Gi|Ti)?")


def _quantity(value: Any) -> Decimal | None:
    match = _QUANTITY.fullmatch(value) if isinstance(value, str) else None
    return Decimal(match[1]) * _SUFFIXES[match[2] or ""] if match else None


def _contains(live: Any, want: Any) -> bool:
    if isinstance(want, Mapping):
        return isinstance(live, Mapping) and all(k in live and _contains(live[k], v) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(live, list) and len(live) == len(want) and all(map(_contains, live, want))
    # The API server writes quantities in canonical form ("0.5" → "500m", "1024Mi" → "1Gi").
    return live == want or (_quantity(want) is not None and _quantity(live) == _quantity(want))


def _comparable(obj: KubeObject) -> KubeObject:
    """A Secret's stringData is write-only: the server stores it base64-encoded in data."""
    if obj.get("kind") != "Secret" or "stringData" not in obj:
        return obj
    data = {**(obj.get("data") or {}),
            **{k: base64.b64encode(v.encode()).decode() for k, v in obj["stringData"].items()}}
    return {**{k: v for k, v in obj.items() if k != "stringData"}, "data": data}


def _paths(obj: Any, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Every map key's path in an object; lists count as one field (managedFields keys their items)."""
    if not isinstance(obj, Mapping):
        return set()
    found: set[tuple[str, ...]] = set()
    for key, value in obj.items():
        found |= {prefix + (key,)} | _paths(value, prefix + (key,))
    return found


def _owned(fields: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """The paths of a managedFields entry's fieldsV1 (`f:spec` → `f:replicas`), lists' items left out."""
    found: set[tuple[str, ...]] = set()
    for key, value in fields.items():
        if key.startswith("f:"):
            path = prefix + (key[2:],)
            found |= {path} | _owned(value or {}, path)
    return found


def owned_fields(live: KubeObject, field_manager: str) -> set[tuple[str, ...]] | None:
    """What `field_manager` owns by apply in a live object; None when it never applied it."""
    entries = [e for e in (live.get("metadata") or {}).get("managedFields") or ()
               if e.get("manager") == field_manager and e.get("operation") == "Apply" and not e.get("subresource")]
    if not entries:
        return None
    return set().union(*(_owned(e.get("fieldsV1") or {}) for e in entries))


def needs_apply(desired: KubeObject, live: KubeObject | None, field_manager: str = "shipyard") -> bool:
    """Would server-side applying `desired` change `live`? Judged by the fields the renderer sets."""
    if live is None:
        return True
    want = _comparable(desired)
    if not _contains(_comparable(live), want):
        return True
    owned = owned_fields(live, field_manager)
    return owned is None or not owned <= (_paths(want) | _paths(desired))
