"""JSON shapes of the control-plane API (they document themselves in /openapi.json)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class AppCreate(BaseModel):
    name: str
    branch: str = "main"
    boot_timeout: int = Field(240, ge=1, le=3600, description="Seconds a new release gets to listen on $PORT")


class AppUpdate(BaseModel):
    branch: str | None = None
    boot_timeout: int | None = Field(None, ge=1, le=3600)


class InstanceOut(BaseModel):
    name: str
    release: int
    state: str
    port: int
    pid: int | None
    exit_code: int | None
    restarts: int


class AppOut(BaseModel):
    name: str
    branch: str
    boot_timeout: int
    release: int | None
    state: str
    url: str
    git_url: str
    created_at: datetime
    instances: list[InstanceOut] = []


class ConfigUpdate(BaseModel):
    set: dict[str, str] = {}
    unset: list[str] = []


class ConfigOut(BaseModel):
    config: dict[str, str]
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


class ErrorOut(BaseModel):
    error: str
    hint: str | None = None
