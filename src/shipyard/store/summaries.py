"""Every app's latest deploy and release in one query each: the dashboard's app list for a hundred apps."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shipyard.store.models import AppRow, DeployRow, ReleaseRow


@dataclass(frozen=True)
class LatestActivity:
    deploy_status: str | None = None  # running | succeeded | failed
    deploy_started_at: datetime | None = None
    release_description: str = ""  # "Deploy abc1234 by Jane Doe: Fix the login page"


class SummaryStore:
    """Mixed into Store, whose session it uses."""

    def _session(self) -> AbstractContextManager[Session]:  # provided by Store
        raise NotImplementedError

    def latest_activity(self) -> dict[str, LatestActivity]:
        """App name → its newest deploy's status and start, and its newest release's description."""
        with self._session() as s:
            newest_deploy = select(DeployRow.app_id, func.max(DeployRow.id).label("id")).group_by(DeployRow.app_id).subquery()
            deploys = {app_id: (status, started) for app_id, status, started in s.execute(
                select(DeployRow.app_id, DeployRow.status, DeployRow.started_at)
                .join(newest_deploy, DeployRow.id == newest_deploy.c.id))}
            newest_release = (select(ReleaseRow.app_id, func.max(ReleaseRow.version).label("version"))
                              .group_by(ReleaseRow.app_id).subquery())
            releases = {app_id: description for app_id, description in s.execute(
                select(ReleaseRow.app_id, ReleaseRow.description)
                .join(newest_release, (ReleaseRow.app_id == newest_release.c.app_id)
                      & (ReleaseRow.version == newest_release.c.version)))}
            result = {}
            for app_id, name in s.execute(select(AppRow.id, AppRow.name)):
                status, started = deploys.get(app_id, (None, None))
                result[name] = LatestActivity(status, started, releases.get(app_id, ""))
            return result
