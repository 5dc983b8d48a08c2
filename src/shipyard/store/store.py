"""The store: desired state in SQLite (WAL) through SQLAlchemy 2.

Every method opens its own short transaction and returns plain records.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, event, func, inspect, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from shipyard.errors import Conflict, NotFound
from shipyard.store import records
from shipyard.store.models import AddonRow, AppRow, Base, BuildRow, ConfigVarRow, DeployRow, ReleaseRow, utcnow
from shipyard.store.names import validate_app_name
from shipyard.store.secrets import Cipher


def _sqlite_engine(path: Path) -> Engine:
    engine = create_engine(f"sqlite:///{path}", connect_args={"check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=5000")
        cur.close()

    return engine


# Columns added after a table was first created: create_all() makes new tables only.
ADDED_COLUMNS = {"apps": {"size": "VARCHAR(16) NOT NULL DEFAULT 'small'"}}


def _add_missing_columns(engine: Engine) -> None:
    with engine.begin() as conn:
        for table, columns in ADDED_COLUMNS.items():
            present = {c["name"] for c in inspect(conn).get_columns(table)}
            for name, ddl in columns.items():
                if name not in present:
                    conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {name} {ddl}"))


class Store:
    def __init__(self, db_path: Path, cipher: Cipher) -> None:
        self._engine = _sqlite_engine(db_path)
        Base.metadata.create_all(self._engine)
        _add_missing_columns(self._engine)
        self._sessions = sessionmaker(self._engine, expire_on_commit=False)
        self._cipher = cipher

    def close(self) -> None:
        self._engine.dispose()

    @contextmanager
    def _session(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session

    # Apps

    def create_app(self, name: str, branch: str = "main", boot_timeout: int = 240) -> records.App:
        validate_app_name(name)
        with self._session() as s:
            if s.scalar(select(AppRow).where(AppRow.name == name)):
                raise Conflict(f"An app named '{name}' already exists.", hint="Pick another name, or use the existing app.")
            row = AppRow(name=name, branch=branch, boot_timeout=boot_timeout)
            s.add(row)
            s.flush()
            return self._app(row)

    def get_app(self, name: str) -> records.App:
        with self._session() as s:
            return self._app(self._app_row(s, name))

    def list_apps(self) -> list[records.App]:
        with self._session() as s:
            return [self._app(r) for r in s.scalars(select(AppRow).order_by(AppRow.name))]

    def update_app(self, name: str, **changes: object) -> records.App:
        """Set an app's settings as given (None included: it clears `port`); `formation` is a dict."""
        with self._session() as s:
            row = self._app_row(s, name)
            for key, value in changes.items():
                setattr(row, key, json.dumps(value, sort_keys=True) if key == "formation" else value)
            return self._app(row)

    def delete_app(self, name: str) -> None:
        with self._session() as s:
            row = self._app_row(s, name)
            for model in (ReleaseRow, ConfigVarRow, AddonRow, DeployRow):
                for child in s.scalars(select(model).where(model.app_id == row.id)):
                    s.delete(child)
            s.flush()
            for build in s.scalars(select(BuildRow).where(BuildRow.app_id == row.id)):
                s.delete(build)
            s.flush()
            s.delete(row)

    def set_current_release(self, name: str, version: int) -> None:
        with self._session() as s:
            row = self._app_row(s, name)
            row.current_release = version
            release = s.scalar(select(ReleaseRow).where(ReleaseRow.app_id == row.id, ReleaseRow.version == version))
            if release is not None:
                release.status = "succeeded"

    def fail_unfinished(self) -> int:
        """At start: releases and deploys a killed platform left half-way are failed, never `deploying` forever."""
        with self._session() as s:
            releases = list(s.scalars(select(ReleaseRow).where(ReleaseRow.status == "deploying")))
            for row in releases:
                row.status = "failed"
            for deploy in s.scalars(select(DeployRow).where(DeployRow.status == "running")):
                deploy.status, deploy.finished_at = "failed", utcnow()
            return len(releases)

    # Deploys

    def add_deploy(self, name: str, description: str) -> int:
        with self._session() as s:
            row = DeployRow(app_id=self._app_row(s, name).id, description=description)
            s.add(row)
            s.flush()
            return row.id

    def save_deploy(self, deploy_id: int, *, steps: list[dict[str, object]], status: str,
                    release: int | None, finished: bool) -> None:
        with self._session() as s:
            row = s.get(DeployRow, deploy_id)
            if row is None:
                return
            row.steps, row.status, row.release = json.dumps(steps), status, release
            if finished:
                row.finished_at = utcnow()

    def list_deploys(self, name: str, limit: int = 20) -> list[dict[str, object]]:
        with self._session() as s:
            app = self._app_row(s, name)
            rows = s.scalars(select(DeployRow).where(DeployRow.app_id == app.id).order_by(DeployRow.id.desc()).limit(limit))
            return [{"id": r.id, "description": r.description, "release": r.release, "status": r.status,
                     "started_at": r.started_at.isoformat(), "finished_at": r.finished_at.isoformat() if r.finished_at else None,
                     "steps": json.loads(r.steps)} for r in rows]

    # Add-ons

    def add_addon(self, name: str, kind: str, credentials: dict[str, object]) -> None:
        with self._session() as s:
            app = self._app_row(s, name)
            s.add(AddonRow(app_id=app.id, kind=kind, credentials=self._cipher.encrypt(json.dumps(credentials))))

    def get_addon(self, name: str, kind: str) -> dict[str, object] | None:
        with self._session() as s:
            app = self._app_row(s, name)
            row = s.scalar(select(AddonRow).where(AddonRow.app_id == app.id, AddonRow.kind == kind))
            return json.loads(self._cipher.decrypt(row.credentials)) if row else None

    def delete_addon(self, name: str, kind: str) -> None:
        with self._session() as s:
            app = self._app_row(s, name)
            for row in s.scalars(select(AddonRow).where(AddonRow.app_id == app.id, AddonRow.kind == kind)):
                s.delete(row)

    # Config vars

    def get_config(self, name: str) -> dict[str, str]:
        with self._session() as s:
            app = self._app_row(s, name)
            rows = s.scalars(select(ConfigVarRow).where(ConfigVarRow.app_id == app.id).order_by(ConfigVarRow.key))
            return {r.key: self._cipher.decrypt(r.value) for r in rows}

    def build_time_keys(self, name: str) -> set[str]:
        with self._session() as s:
            app = self._app_row(s, name)
            return set(s.scalars(select(ConfigVarRow.key).where(ConfigVarRow.app_id == app.id,
                                                                  ConfigVarRow.build_time.is_(True))))

    def update_config(self, name: str, set_vars: dict[str, str], unset: list[str],
                      build_time: bool = False) -> dict[str, str]:
        with self._session() as s:
            app = self._app_row(s, name)
            existing = {r.key: r for r in s.scalars(select(ConfigVarRow).where(ConfigVarRow.app_id == app.id))}
            for key, value in set_vars.items():
                if key in existing:
                    existing[key].value = self._cipher.encrypt(value)
                    existing[key].build_time = build_time
                else:
                    s.add(ConfigVarRow(app_id=app.id, key=key, value=self._cipher.encrypt(value),
                                       build_time=build_time))
            for key in unset:
                if key in existing:
                    s.delete(existing[key])
        return self.get_config(name)

    # Builds and releases

    def add_build(self, name: str, commit: str, slug_path: str, manifest: str) -> records.Build:
        with self._session() as s:
            app = self._app_row(s, name)
            row = BuildRow(app_id=app.id, commit=commit, slug_path=slug_path, manifest=manifest)
            s.add(row)
            s.flush()
            return self._build(row, name)

    def add_release(self, name: str, build_id: int, config: dict[str, str], description: str) -> records.Release:
        with self._session() as s:
            app = self._app_row(s, name)
            last = s.scalar(select(func.max(ReleaseRow.version)).where(ReleaseRow.app_id == app.id)) or 0
            row = ReleaseRow(app_id=app.id, version=last + 1, build_id=build_id,
                             config=self._cipher.encrypt(json.dumps(config)), description=description)
            s.add(row)
            s.flush()
            return self._release(s, row, name)

    def mark_release(self, name: str, version: int, status: str) -> None:
        with self._session() as s:
            app = self._app_row(s, name)
            row = s.scalar(select(ReleaseRow).where(ReleaseRow.app_id == app.id, ReleaseRow.version == version))
            if row is not None:
                row.status = status

    def get_release(self, name: str, version: int) -> records.Release:
        with self._session() as s:
            app = self._app_row(s, name)
            row = s.scalar(select(ReleaseRow).where(ReleaseRow.app_id == app.id, ReleaseRow.version == version))
            if row is None:
                raise NotFound(f"App '{name}' has no release v{version}.", hint=f"See `shipyard releases {name}`.")
            return self._release(s, row, name)

    def list_releases(self, name: str) -> list[records.Release]:
        with self._session() as s:
            app = self._app_row(s, name)
            rows = s.scalars(select(ReleaseRow).where(ReleaseRow.app_id == app.id).order_by(ReleaseRow.version.desc()))
            return [self._release(s, r, name) for r in rows]

    def latest_build(self, name: str) -> records.Build | None:
        with self._session() as s:
            app = self._app_row(s, name)
            row = s.scalar(select(BuildRow).where(BuildRow.app_id == app.id).order_by(BuildRow.id.desc()).limit(1))
            return self._build(row, name) if row else None

    # Row -> record

    @staticmethod
    def _app_row(s: Session, name: str) -> AppRow:
        row = s.scalar(select(AppRow).where(AppRow.name == name))
        if row is None:
            raise NotFound(f"There is no app named '{name}'.",
                           hint=f"Create it with `shipyard apps create {name}`, or list apps with `shipyard apps`.")
        return row

    @staticmethod
    def _app(row: AppRow) -> records.App:
        return records.App(id=row.id, name=row.name, branch=row.branch, boot_timeout=row.boot_timeout,
                           current_release=row.current_release, start_command=row.start_command or "",
                           build_command=row.build_command or "", port=row.port,
                           formation=json.loads(row.formation or "{}"), health_path=row.health_path or "",
                           created_at=row.created_at, size=row.size or "small")

    @staticmethod
    def _build(row: BuildRow, app: str) -> records.Build:
        return records.Build(id=row.id, app=app, commit=row.commit, slug_path=row.slug_path,
                             manifest=row.manifest, created_at=row.created_at)

    def _release(self, s: Session, row: ReleaseRow, app: str) -> records.Release:
        build = s.get(BuildRow, row.build_id)
        assert build is not None
        return records.Release(app=app, version=row.version, build=self._build(build, app),
                               config=json.loads(self._cipher.decrypt(row.config)),
                               description=row.description, status=row.status, created_at=row.created_at)
