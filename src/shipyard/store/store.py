"""The store: desired state in SQLite (WAL) through SQLAlchemy 2.

Every method opens its own short transaction and returns plain records. Opening it checks the file
(integrity) and brings its schema up to date (Alembic); an app whose data cannot be read is listed as
damaged instead of failing the whole list.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

from sqlalchemy import create_engine, delete, event, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from shipyard.errors import Conflict, NotFound
from shipyard.store import records
from shipyard.store.app_reads import app_record, read_app, read_apps
from shipyard.store.damage import DAMAGE_ERRORS, app_damaged, describe_damage, is_damage, parse_json_object
from shipyard.store.integrity import AppDamaged, ensure_sound
from shipyard.store.domains import DomainStore
from shipyard.store.metrics import MetricStore
from shipyard.store.summaries import SummaryStore
from shipyard.store.models import (AddonRow, AppRow, BuildRow, ConfigVarRow, DeployRow, DomainRow, MetricRow, ReleaseRow,
                                   utcnow)
from shipyard.store.names import validate_app_name
from shipyard.store.schema import upgrade_schema
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


class Store(DomainStore, SummaryStore, MetricStore):
    def __init__(self, db_path: Path, cipher: Cipher, backups_dir: Path) -> None:
        """Open the store at db_path; a damaged file, or one from a newer Shipyard, fails here with the fix
        (backups_dir: where its backups are, to name the newest)."""
        ensure_sound(db_path, backups_dir)
        upgrade_schema(db_path)
        self.data_dir = db_path.parent
        self._engine = _sqlite_engine(db_path)
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
            return app_record(row)

    def require_app(self, name: str) -> int:
        """The app's id; NotFound unless it exists, damaged or not (its log, for one, stays readable)."""
        with self._session() as s:
            app_id = s.scalar(select(AppRow.id).where(AppRow.name == name))
        if app_id is None:
            self._missing(name)
        return app_id

    def get_app(self, name: str) -> records.App:
        """The app; AppDamaged (with the fix) when its data cannot be read."""
        app = self._read_app(self.require_app(name), name)
        if app is None:
            self._missing(name)
        if app.damage:
            raise app_damaged(name, app.damage)
        return app

    def list_apps(self) -> list[records.App]:
        """Every app; one whose data cannot be read comes with `damage` set, never missing from the list."""
        with self._engine.connect() as conn:
            return read_apps(conn, self._cipher, self.data_dir)

    def update_app(self, name: str, **changes: object) -> records.App:
        """Set an app's settings as given (None included: it clears `port`); `formation` is a dict."""
        with self._session() as s:
            row = self._app_row(s, name)
            for key, value in changes.items():
                if key == "autoscale":
                    value = {k: b.to_json() for k, b in value.items()}  # type: ignore[attr-defined]
                setattr(row, key, json.dumps(value, sort_keys=True) if key in ("formation", "autoscale") else value)
            try:
                return app_record(row)
            except DAMAGE_ERRORS as exc:  # rolls the change back: a damaged app is restored, not patched
                raise self._damaged(name, "its settings", exc) from None

    def delete_app(self, name: str) -> None:
        with self._session() as s:
            row = self._app_row(s, name)
            for model in (ReleaseRow, ConfigVarRow, AddonRow, DeployRow, DomainRow):
                for child in s.scalars(select(model).where(model.app_id == row.id)):
                    s.delete(child)
            s.execute(delete(MetricRow).where(MetricRow.app_id == row.id))  # thousands of rows: one statement
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

    def fail_unfinished(self, reason: str) -> int:
        """At start: releases and deploys a killed platform left half-way are `interrupted`, never `deploying`
        forever; each such deploy gets a last step saying why (`shipyard deploys`)."""
        with self._session() as s:
            releases = list(s.scalars(select(ReleaseRow).where(ReleaseRow.status == "deploying")))
            for row in releases:
                row.status = "interrupted"
            now = utcnow()
            for deploy in s.scalars(select(DeployRow).where(DeployRow.status == "running")):
                try:
                    steps = json.loads(deploy.steps or "[]")
                except ValueError:  # a damaged record must not stop the platform's start
                    steps = []
                steps = [step for step in steps if isinstance(step, dict)] if isinstance(steps, list) else []
                for step in steps:
                    if step.get("status") == "running":
                        step.update(status="interrupted", finished=now.timestamp())
                steps.append({"name": "interrupted", "started": now.timestamp(), "finished": now.timestamp(),
                              "status": "failed", "log": [reason]})
                deploy.steps, deploy.status, deploy.finished_at = json.dumps(steps), "interrupted", now
            return len(releases)

    # Deploys

    def add_deploy(self, name: str, description: str) -> int:
        with self._session() as s:
            row = DeployRow(app_id=self._app_row(s, name).id, description=description)
            s.add(row)
            s.flush()
            return row.id

    def save_deploy(self, deploy_id: int, *, steps: list[dict[str, object]], status: str,
                    release: int | None, finished: bool, error: str | None = None, hint: str | None = None) -> None:
        with self._session() as s:
            row = s.get(DeployRow, deploy_id)
            if row is None:
                return
            row.steps, row.status, row.release = json.dumps(steps), status, release
            if error is not None:
                row.error, row.hint = error, hint
            if finished:
                row.finished_at = utcnow()

    def list_deploys(self, name: str, limit: int = 20) -> list[dict[str, object]]:
        with self._session() as s:
            app = self._app_row(s, name)
            rows = s.scalars(select(DeployRow).where(DeployRow.app_id == app.id).order_by(DeployRow.id.desc()).limit(limit))
            return [{"id": r.id, "description": r.description, "release": r.release, "status": r.status,
                     "started_at": r.started_at.isoformat(), "finished_at": r.finished_at.isoformat() if r.finished_at else None,
                     "steps": json.loads(r.steps), "error": r.error, "hint": r.hint} for r in rows]

    # Add-ons

    def add_addon(self, name: str, kind: str, credentials: dict[str, object]) -> None:
        with self._session() as s:
            app = self._app_row(s, name)
            s.add(AddonRow(app_id=app.id, kind=kind, credentials=self._cipher.encrypt(json.dumps(credentials))))

    def get_addon(self, name: str, kind: str) -> dict[str, object] | None:
        with self._session() as s:
            app = self._app_row(s, name)
            row = s.scalar(select(AddonRow).where(AddonRow.app_id == app.id, AddonRow.kind == kind))
            if row is None:
                return None
            try:
                return parse_json_object(self._cipher.decrypt(row.credentials))
            except DAMAGE_ERRORS as exc:
                raise self._damaged(name, f"the credentials of its {kind} add-on", exc) from None

    def update_addon(self, name: str, kind: str, credentials: dict[str, object]) -> None:
        with self._session() as s:
            app = self._app_row(s, name)
            for row in s.scalars(select(AddonRow).where(AddonRow.app_id == app.id, AddonRow.kind == kind)):
                row.credentials = self._cipher.encrypt(json.dumps(credentials))

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
            try:
                return {r.key: self._cipher.decrypt(r.value) for r in rows}
            except DAMAGE_ERRORS as exc:
                raise self._damaged(name, "its config vars", exc) from None

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

    def live_manifests(self) -> dict[str, str]:
        """Each app's live release's build manifest (JSON) by app name, in one statement: app lists show every
        app's formation, which a get_release per app (a session, three reads, a decryption) made slow."""
        query = (select(AppRow.name, BuildRow.manifest)
                 .join(ReleaseRow, (ReleaseRow.app_id == AppRow.id) & (ReleaseRow.version == AppRow.current_release))
                 .join(BuildRow, BuildRow.id == ReleaseRow.build_id))
        try:
            with self._engine.connect() as conn:
                return {name: manifest for name, manifest in conn.execute(query)}
        except DAMAGE_ERRORS as exc:  # a value that cannot be read: each app is read on its own (and reported)
            if not is_damage(exc):
                raise
            return {}

    def latest_build(self, name: str) -> records.Build | None:
        with self._session() as s:
            app = self._app_row(s, name)
            row = s.scalar(select(BuildRow).where(BuildRow.app_id == app.id).order_by(BuildRow.id.desc()).limit(1))
            return self._build(row, name) if row else None

    # Row -> record

    @staticmethod
    def _missing(name: str) -> NoReturn:
        raise NotFound(f"There is no app named '{name}'.",
                       hint=f"Create it with `shipyard apps create {name}`, or list apps with `shipyard apps`.")

    def _app_row(self, s: Session, name: str) -> AppRow:
        try:
            row = s.scalar(select(AppRow).where(AppRow.name == name))
        except DAMAGE_ERRORS as exc:  # e.g. a created_at that is no date
            raise self._damaged(name, "its settings", exc) from None
        if row is None:
            self._missing(name)
        return row

    def _damaged(self, name: str, part: str, exc: BaseException) -> AppDamaged:
        """The error for a part of the app that cannot be read; any other failure is raised as it is."""
        if not is_damage(exc):
            raise exc
        return app_damaged(name, describe_damage(part, exc, self.data_dir))

    def _read_app(self, app_id: int, name: str) -> records.App | None:
        """The app with every part of it read (settings, config vars, live release, add-ons); one that fails
        comes back marked damaged. None: destroyed meanwhile."""
        with self._engine.connect() as conn:
            return read_app(conn, self._cipher, self.data_dir, app_id, name)

    @staticmethod
    def _build(row: BuildRow, app: str) -> records.Build:
        return records.Build(id=row.id, app=app, commit=row.commit, slug_path=row.slug_path,
                             manifest=row.manifest, created_at=row.created_at)

    def _release(self, s: Session, row: ReleaseRow, app: str) -> records.Release:
        build = s.get(BuildRow, row.build_id)
        assert build is not None
        try:
            config = parse_json_object(self._cipher.decrypt(row.config))
        except DAMAGE_ERRORS as exc:
            raise self._damaged(app, f"the config of its release v{row.version}", exc) from None
        return records.Release(app=app, version=row.version, build=self._build(build, app),
                               config=config,  # type: ignore[arg-type]
                               description=row.description, status=row.status, created_at=row.created_at)
