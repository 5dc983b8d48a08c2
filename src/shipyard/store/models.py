"""The desired state, as SQLAlchemy 2 tables: apps, builds (slugs), releases, config vars."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class AppRow(Base):
    __tablename__ = "apps"
    # Never reuse a destroyed app's id: an app's uids derive from it.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    branch: Mapped[str] = mapped_column(String(255), default="main")
    boot_timeout: Mapped[int] = mapped_column(default=240)
    # Render's "Start Command" and "Build Command"; a fixed port for apps that ignore $PORT.
    start_command: Mapped[str] = mapped_column(Text, default="")
    build_command: Mapped[str] = mapped_column(Text, default="")
    # Render's "Pre-Deploy Command": runs in the release phase, instead of the Procfile's `release:`.
    release_command: Mapped[str] = mapped_column(Text, default="")
    port: Mapped[int | None] = mapped_column(default=None)
    # JSON {"web": 2, "worker": 1}; a type it lacks runs at its default (web 1, others 0: release.plan).
    formation: Mapped[str] = mapped_column(Text, default="{}")
    # JSON {"web": {"min": 1, "max": 5, "target": 20}}: a type listed here is scaled by the autoscaler.
    autoscale: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")
    health_path: Mapped[str] = mapped_column(Text, default="")  # e.g. /healthz: must answer < 500 to go live
    size: Mapped[str] = mapped_column(String(16), default="small")  # memory/CPU/process limits of each instance
    # Plain HTTP answered with a redirect to HTTPS (None: the default, on for publicly trusted certificates);
    # HSTS sent over HTTPS.
    redirect_https: Mapped[bool | None] = mapped_column(default=None)
    hsts: Mapped[bool] = mapped_column(default=False)
    # The release version that is live (desired). Only promoted after it passed its health gate.
    current_release: Mapped[int | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class BuildRow(Base):
    __tablename__ = "builds"

    id: Mapped[int] = mapped_column(primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    commit: Mapped[str] = mapped_column(String(64))
    slug_path: Mapped[str] = mapped_column(Text)
    manifest: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReleaseRow(Base):
    __tablename__ = "releases"
    __table_args__ = (UniqueConstraint("app_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    version: Mapped[int]
    build_id: Mapped[int] = mapped_column(ForeignKey("builds.id"))
    # Encrypted JSON of the config vars this release runs with: releases are immutable.
    config: Mapped[bytes]
    description: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="deploying")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DeployRow(Base):
    """One deploy (push, config change, rollback) and its steps, kept as data for `shipyard deploys`."""

    __tablename__ = "deploys"

    id: Mapped[int] = mapped_column(primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    description: Mapped[str] = mapped_column(Text)
    release: Mapped[int | None] = mapped_column(default=None)
    status: Mapped[str] = mapped_column(String(16), default="running")
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    steps: Mapped[str] = mapped_column(Text, default="[]")  # JSON: [{name, started, finished, status, log}]
    error: Mapped[str | None] = mapped_column(Text, default=None)  # a failed deploy's message and hint, as the
    hint: Mapped[str | None] = mapped_column(Text, default=None)  # CLI printed them


class AddonRow(Base):
    __tablename__ = "addons"
    __table_args__ = (UniqueConstraint("app_id", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    credentials: Mapped[bytes]  # encrypted JSON


class ConfigVarRow(Base):
    __tablename__ = "config_vars"
    __table_args__ = (UniqueConstraint("app_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    value: Mapped[bytes]  # encrypted
    # Set with --build-time (kept for compatibility): every config var is visible to builds anyway.
    build_time: Mapped[bool] = mapped_column(default=False)


class DomainRow(Base):
    """A custom domain of an app, and the state of its certificate."""

    __tablename__ = "domains"

    id: Mapped[int] = mapped_column(primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    hostname: Mapped[str] = mapped_column(String(253), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | issued | failed
    detail: Mapped[str] = mapped_column(Text, default="")  # why it failed, or who issued it
    not_after: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class MetricRow(Base):
    """An app's figures for one minute or one hour (store/metrics.py): requests by status class, the latency
    histogram, bytes sent, web instances up, and each instance's CPU and memory.

    WITHOUT ROWID: the primary key is the table itself (no second b-tree), the bulk of the store being these rows.
    """

    __tablename__ = "metrics"
    __table_args__ = {"sqlite_with_rowid": False}

    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True)
    resolution: Mapped[int] = mapped_column(primary_key=True)  # seconds: 60 or 3600
    start: Mapped[int] = mapped_column(primary_key=True)  # unix seconds, a multiple of the resolution
    requests: Mapped[int] = mapped_column(default=0)  # every status, "other" (no status) included
    status_1xx: Mapped[int] = mapped_column(default=0)
    status_2xx: Mapped[int] = mapped_column(default=0)
    status_3xx: Mapped[int] = mapped_column(default=0)
    status_4xx: Mapped[int] = mapped_column(default=0)
    status_5xx: Mapped[int] = mapped_column(default=0)
    # JSON list of counts aligned with edge.metrics.LATENCY_BUCKETS then +Inf, trailing zeros left out: sums of
    # minutes are exact hours, and percentiles are computed when read.
    latency: Mapped[str] = mapped_column(Text, default="[]")
    bytes_sent: Mapped[int] = mapped_column(default=0)
    instances: Mapped[int] = mapped_column(default=0)  # web instances up (the most seen in the bucket)
    usage: Mapped[str] = mapped_column(Text, default="{}")  # JSON {"web.1": [cores, bytes]}, averages; null: unknown
