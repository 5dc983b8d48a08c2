"""JSON shapes of the control-plane API (they document themselves in /openapi.json)."""

from __future__ import annotations

from datetime import datetime

from typing import Literal

from pydantic import BaseModel, Field


class AppCreate(BaseModel):
    name: str
    branch: str = "main"
    boot_timeout: int = Field(240, ge=1, le=3600, description="Seconds a new release gets to listen on $PORT")


class AppUpdate(BaseModel):
    branch: str | None = None
    boot_timeout: int | None = Field(None, ge=1, le=3600)
    start_command: str | None = Field(None, description="Overrides the detected start command; \"\" clears it")
    build_command: str | None = Field(None, description="Run after the install, in the app's directory")
    release_command: str | None = Field(None, description="Run before each release goes live, instead of the "
                                        "Procfile's `release:` (from the next push); \"\" clears it")
    port: int | None = Field(None, ge=0, le=65535, description="Fixed port for apps that ignore $PORT; 0 clears it")
    health_path: str | None = Field(None, pattern=r"^(/.*)?$", description="HTTP path that must answer < 500")
    size: str | None = Field(None, description="Instance size: small (512 MB), medium (1 GB) or large (2 GB)")
    redirect_https: Literal["on", "off", "auto"] | None = Field(
        None, description="Plain HTTP redirected to HTTPS: on, off, or auto (once a certificate is publicly trusted)")
    hsts: Literal["on", "off"] | None = Field(None, description="Send Strict-Transport-Security over HTTPS")


class InstanceOut(BaseModel):
    name: str
    release: int
    state: str
    port: int
    pid: int | None
    exit_code: int | None
    restarts: int
    since: float  # when it entered its state, seconds since the epoch
    last_failure: str = ""  # why it last crashed or was restarted ("did not answer 3 health checks …")
    routed: bool = False  # the edge is up and sends it requests
    in_flight: int | None = None  # requests the edge has sent it and not had answered yet (web only)
    cpu: float | None = None  # cores, at the last sample (SHIPYARD_METRICS_INTERVAL)
    memory: int | None = None  # bytes, at the last sample


class AppOut(BaseModel):
    name: str
    branch: str
    boot_timeout: int
    start_command: str
    build_command: str
    release_command: str = ""
    port: int | None
    health_path: str
    size: str
    release: int | None
    state: str
    url: str
    https_url: str | None = None  # with the HTTPS listener: the app's https:// URL
    redirect_https: str = "auto"  # on | off | auto
    hsts: bool = False
    git_url: str
    created_at: datetime
    instances: list[InstanceOut] = []
    formation: dict[str, int] = {}  # instances per process type, defaults included (web 1, others 0)
    damage: str | None = None  # state `damaged`: what in the store cannot be read, and the fix
    autoscale: dict[str, AutoscaleOut] = {}  # autoscaled process types and their bounds
    scaling: list[ScalingOut] = []  # the autoscaler's recent decisions, oldest first


class AutoscaleIn(BaseModel):
    min: int = Field(ge=0, le=20, description="Fewest instances (0: scale to zero, once available)")
    max: int = Field(ge=1, le=20, description="Most instances")
    concurrency: float = Field(gt=0, le=10000, description="Requests in flight per instance to aim at")


class AutoscaleOut(BaseModel):
    min: int
    max: int
    concurrency: float


class ScalingOut(BaseModel):
    at: datetime
    current: int
    desired: int
    stable_concurrency: float = Field(description="Requests in flight, averaged over the stable window (60 s)")
    panic_concurrency: float = Field(description="Requests in flight, averaged over the panic window (6 s)")
    panicking: bool
    reason: str


class ConfigUpdate(BaseModel):
    set: dict[str, str] = {}
    unset: list[str] = []
    build_time: bool = Field(False, description="Accepted for compatibility; changes nothing a build sees: builds "
                             "see every config var, add-on ones (DATABASE_URL, PG*) included")


class ConfigOut(BaseModel):
    config: dict[str, str]
    build_time: list[str] = Field([], description="Keys last set with build_time=true, listed by GET "
                                  "/apps/{name}/config only; builds see every config var, not just these")
    release: int | None = None


class ReleaseOut(BaseModel):
    version: int
    description: str
    status: str
    commit: str
    current: bool
    created_at: datetime


class DeployRequest(BaseModel):
    source_dir: str
    commit: str
    received_at: float | None = Field(None, description="When the push began (epoch seconds)")
    author: str = Field("", description="The commit's author, shown by `shipyard releases`")
    subject: str = Field("", description="The commit message's first line")


class ErrorOut(BaseModel):
    error: str
    hint: str | None = None


class AddonCreate(BaseModel):
    kind: str = Field("postgres", pattern="^postgres$", description="Only PostgreSQL so far")


class BackupOut(BaseModel):
    id: str
    size: int
    created_at: float


class RestoreRequest(BaseModel):
    backup_id: str
    confirm: str = ""


class RollbackRequest(BaseModel):
    version: int | None = Field(None, ge=1, description="None: the newest release before the live one that went live")
    release_phase: bool = True  # False: skip the Procfile's release command (e.g. a migration older code lacks)


class RunRequest(BaseModel):
    command: str = Field(min_length=1)
    detach: bool = Field(False, description="Return at once; the output goes to the app's log")


class LayerOut(BaseModel):
    name: str
    active: bool
    detail: str
    # "isolation": a layer between tenants (degraded fails `shipyard doctor`); "resource": room, e.g. the disk
    # (a warning fails it); "speed": what makes wakes from zero faster here, never required.
    kind: str = "isolation"
