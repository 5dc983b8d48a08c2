"""Custom domains in the store: which app answers a hostname, and how its certificate is doing."""

from __future__ import annotations


from contextlib import AbstractContextManager
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from shipyard.errors import Conflict, NotFound
from shipyard.store import records
from shipyard.store.models import AppRow, DomainRow
from shipyard.store.names import validate_domain


class DomainStore:
    """Mixed into Store, whose session and app lookup it uses."""

    def _session(self) -> AbstractContextManager[Session]:  # provided by Store
        raise NotImplementedError

    def _app_row(self, s: Session, name: str) -> AppRow:  # provided by Store
        raise NotImplementedError

    def add_domain(self, app: str, hostname: str) -> records.Domain:
        hostname = validate_domain(hostname)
        with self._session() as s:
            row = self._app_row(s, app)
            taken = s.scalar(select(DomainRow).where(DomainRow.hostname == hostname))
            if taken is not None:
                owner = s.get(AppRow, taken.app_id)
                raise Conflict(f"{hostname} is already a domain of the app '{owner.name if owner else '?'}'.",
                               hint=f"Remove it there first: `shipyard domains remove {owner.name if owner else '?'} "
                                    f"{hostname}`.")
            domain = DomainRow(app_id=row.id, hostname=hostname, status="pending", detail="")
            s.add(domain)
            s.flush()
            return _domain(domain, app)

    def remove_domain(self, app: str, hostname: str) -> None:
        with self._session() as s:
            row = self._app_row(s, app)
            domain = s.scalar(select(DomainRow).where(DomainRow.app_id == row.id,
                                                      DomainRow.hostname == hostname.lower().rstrip(".")))
            if domain is None:
                raise NotFound(f"{hostname} is not a domain of the app '{app}'.",
                               hint=f"See its domains with `shipyard domains list {app}`.")
            s.delete(domain)

    def list_domains(self, app: str | None = None) -> list[records.Domain]:
        with self._session() as s:
            query = select(DomainRow, AppRow.name).join(AppRow, AppRow.id == DomainRow.app_id)
            if app is not None:
                query = query.where(AppRow.name == app)
            return [_domain(row, name) for row, name in s.execute(query.order_by(DomainRow.hostname)).all()]

    def set_domain_status(self, hostname: str, status: str, detail: str, not_after: datetime | None = None) -> None:
        with self._session() as s:
            domain = s.scalar(select(DomainRow).where(DomainRow.hostname == hostname))
            if domain is not None:  # removed meanwhile: nothing to record
                domain.status, domain.detail, domain.not_after = status, detail, not_after


def _domain(row: DomainRow, app: str) -> records.Domain:
    return records.Domain(app=app, hostname=row.hostname, status=row.status, detail=row.detail,
                          not_after=row.not_after)


