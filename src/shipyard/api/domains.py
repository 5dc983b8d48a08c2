"""Custom domains and the platform's CA over HTTP: `shipyard domains add|remove|list`, `shipyard ca`."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel

from shipyard.api.operations import Operations
from shipyard.control.platform import Platform
from shipyard.errors import PlatformError
from shipyard.store import records


class DomainIn(BaseModel):
    hostname: str


class DomainOut(BaseModel):
    hostname: str
    status: str  # pending | issued | failed
    detail: str
    not_after: datetime | None
    dns: str  # what the domain's DNS must say for requests (and the ACME server) to reach this machine


class CaOut(BaseModel):
    path: str
    certificate: str


def domain_out(platform: Platform, domain: records.Domain) -> DomainOut:
    host = platform.settings.edge_host
    where = "this machine's public address" if host in ("0.0.0.0", "::", "127.0.0.1", "::1") else host
    return DomainOut(hostname=domain.hostname, status=domain.status, detail=domain.detail,
                     not_after=domain.not_after,
                     dns=f"an A/AAAA record (or a CNAME) for {domain.hostname} pointing at {where}, with ports 80 "
                         f"and 443 forwarded to the edge ({platform.settings.edge_port}, "
                         f"{platform.settings.https_port})")


def domains_router(platform: Platform, operations: Operations) -> APIRouter:
    router = APIRouter()

    @router.get("/apps/{name}/domains")
    async def list_domains(name: str) -> list[DomainOut]:
        platform.store.get_app(name)
        return [domain_out(platform, d) for d in platform.store.list_domains(name)]

    @router.post("/apps/{name}/domains", status_code=201)
    async def add_domain(name: str, body: DomainIn) -> DomainOut:
        return domain_out(platform, operations.add_domain(name, body.hostname))

    @router.delete("/apps/{name}/domains/{hostname}")
    async def remove_domain(name: str, hostname: str) -> dict[str, str]:
        operations.remove_domain(name, hostname)
        return {"removed": hostname}

    @router.get("/ca")
    async def certificate_authority() -> CaOut:
        ca = platform.edge_sync.certificates.ca
        if ca is None or not ca.cert_file.exists():
            raise PlatformError("This platform has no CA yet: it is made by the first `shipyard up`.")
        return CaOut(path=str(ca.cert_file), certificate=ca.cert_file.read_text())

    return router
