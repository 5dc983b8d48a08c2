"""Reading apps whole: each app's settings, config vars, live release config and add-ons' credentials, read for
every app at once in a constant number of statements, then checked app by app, so one app whose data cannot be
read comes back marked damaged (records.App.damaged) and the others are untouched.

Core selects of columns on one connection: with hundreds of apps, SQLAlchemy's per-statement cost (building the
select, ORM loading, a session per app) was most of `list_apps`, which the autoscaler, every edge route sync and
the dashboard's app list call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, LargeBinary, Select, and_, bindparam, cast, select
from sqlalchemy.engine import Connection, Row

from shipyard.store import records
from shipyard.store.damage import (DAMAGE_ERRORS, describe_damage, is_damage, parse_autoscale, parse_formation,
                                   parse_json_object, require_int)
from shipyard.store.models import AddonRow, AppRow, ConfigVarRow, ReleaseRow
from shipyard.store.secrets import Cipher

_APPS, _CONFIG_VARS = AppRow.__table__.c, ConfigVarRow.__table__.c
_RELEASES, _ADDONS = ReleaseRow.__table__.c, AddonRow.__table__.c


@dataclass(frozen=True)
class _Query:
    """A statement whose first column is the app's id: for every app, or (`some`) for the apps in :ids."""

    every: Select[Any]
    some: Select[Any]

    @classmethod
    def of(cls, statement: Select[Any], app_id: ColumnElement[int]) -> _Query:
        return cls(statement, statement.where(app_id.in_(bindparam("ids", expanding=True))))


# The name as bytes: a name that is not valid UTF-8 must not make the whole list fail (reading that app's
# settings as text then fails for it alone, which marks it damaged).
_INDEX = select(_APPS.id, cast(_APPS.name, LargeBinary)).order_by(_APPS.name)
_SETTINGS = _Query.of(select(*_APPS), _APPS.id)
# In the order of the unique (app_id, key/kind) indexes, which reading one app used: with two bad values, the
# one named in the damage stays the same.
_CONFIG_VALUES = _Query.of(select(_CONFIG_VARS.app_id, _CONFIG_VARS.value)
                           .order_by(_CONFIG_VARS.app_id, _CONFIG_VARS.key), _CONFIG_VARS.app_id)
_LIVE_CONFIGS = _Query.of(select(_RELEASES.app_id, _RELEASES.version, _RELEASES.config)
                          .join(AppRow.__table__, and_(_APPS.id == _RELEASES.app_id,
                                                       _APPS.current_release == _RELEASES.version)), _RELEASES.app_id)
_CREDENTIALS = _Query.of(select(_ADDONS.app_id, _ADDONS.credentials).order_by(_ADDONS.app_id, _ADDONS.kind),
                         _ADDONS.app_id)


@dataclass
class _Rows:
    """One statement's rows by app id; an app whose rows could not be read has its error instead."""

    rows: dict[int, list[Row[Any]]] = field(default_factory=dict)
    errors: dict[int, Exception] = field(default_factory=dict)

    def of(self, app_id: int) -> list[Row[Any]]:
        if app_id in self.errors:
            raise self.errors[app_id]
        return self.rows.get(app_id, [])


def _fetch(conn: Connection, query: _Query, app_ids: Sequence[int], every: bool) -> _Rows:
    """query's rows for app_ids: in one statement for every app (every), or for app_ids alone.

    A value SQLite cannot hand over (text that is not UTF-8) or SQLAlchemy cannot convert (a date that is no date)
    fails the whole statement it is in; the apps are then read again in halves down to the one it belongs to,
    which gets the error: ~2·log2(apps) more statements per damaged app, none while the store is sound."""
    found = _Rows()

    def read(ids: Sequence[int], every: bool) -> None:
        try:
            rows = (conn.execute(query.every) if every else conn.execute(query.some, {"ids": list(ids)})).all()
        except DAMAGE_ERRORS as exc:
            if not is_damage(exc):
                raise
            if every:  # by id from now on: a row of an app created since the index must not blame another
                read(ids, False)
            elif len(ids) == 1:
                found.errors[ids[0]] = exc
            elif ids:
                read(ids[:len(ids) // 2], False)
                read(ids[len(ids) // 2:], False)
            return
        for row in rows:
            found.rows.setdefault(row[0], []).append(row)

    read(app_ids, every)
    return found


def app_record(row: AppRow | Row[Any]) -> records.App:
    """The app's settings as a record (an AppRow, or a row of every column of apps); a value of the wrong kind
    raises one of DAMAGE_ERRORS."""
    return records.App(id=row.id, name=row.name, branch=row.branch,
                       boot_timeout=require_int(row.boot_timeout, "boot_timeout"),  # type: ignore[arg-type]
                       current_release=require_int(row.current_release, "current_release", optional=True),
                       start_command=row.start_command or "", build_command=row.build_command or "",
                       port=require_int(row.port, "port", optional=True), formation=parse_formation(row.formation),
                       health_path=row.health_path or "", created_at=row.created_at, size=row.size or "small",
                       release_command=row.release_command or "", redirect_https=row.redirect_https,
                       hsts=bool(row.hsts), autoscale=parse_autoscale(row.autoscale))


def _checked_app(app_id: int, name: str, parts: Sequence[_Rows], cipher: Cipher, data_dir: Path) -> records.App | None:
    """The app with every part of it read and checked in turn, the first that fails named in its damage. None:
    destroyed meanwhile."""
    settings, config_values, live_configs, credentials = parts
    part = "its settings"
    try:
        rows = settings.of(app_id)
        if not rows:
            return None
        app = app_record(rows[0])
        part = "its config vars"
        for _, value in config_values.of(app_id):
            cipher.decrypt(value)
        part = f"the config of its live release v{app.current_release}"
        for _, version, config in live_configs.of(app_id):
            if version == app.current_release:  # not one promoted since this app's settings were read
                parse_json_object(cipher.decrypt(config))
        part = "its add-ons' credentials"
        for _, encrypted in credentials.of(app_id):
            parse_json_object(cipher.decrypt(encrypted))
        return app
    except DAMAGE_ERRORS as exc:
        if not is_damage(exc):
            raise
        return records.App.damaged(app_id, name, describe_damage(part, exc, data_dir))


def _read(conn: Connection, cipher: Cipher, data_dir: Path, index: Sequence[tuple[int, str]],
          every: bool) -> list[records.App]:
    ids = [app_id for app_id, _ in index]
    parts = [_fetch(conn, query, ids, every) for query in (_SETTINGS, _CONFIG_VALUES, _LIVE_CONFIGS, _CREDENTIALS)]
    apps = (_checked_app(app_id, name, parts, cipher, data_dir) for app_id, name in index)
    return [app for app in apps if app is not None]


def read_apps(conn: Connection, cipher: Cipher, data_dir: Path) -> list[records.App]:
    """Every app, by name; one whose data cannot be read comes with `damage` set, never missing from the list."""
    index = [(app_id, bytes(raw or b"").decode("utf-8", "replace")) for app_id, raw in conn.execute(_INDEX)]
    return _read(conn, cipher, data_dir, index, every=True)


def read_app(conn: Connection, cipher: Cipher, data_dir: Path, app_id: int, name: str) -> records.App | None:
    """The app, checked as read_apps checks each; None: destroyed meanwhile."""
    apps = _read(conn, cipher, data_dir, [(app_id, name)], every=False)
    return apps[0] if apps else None
