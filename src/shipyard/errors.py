"""One exception hierarchy; every message is written for the person using Shipyard.

`message` says what went wrong, `hint` says how to fix it. The API turns these
into JSON errors with `status_code`, the CLI prints them without a traceback.
"""

from __future__ import annotations


class ShipyardError(Exception):
    status_code: int = 400

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n{self.hint}"


class InvalidInput(ShipyardError):
    status_code = 422


class NotFound(ShipyardError):
    status_code = 404


class Conflict(ShipyardError):
    status_code = 409


class Unauthorized(ShipyardError):
    status_code = 401


class BuildError(ShipyardError):
    """The source could not be turned into a slug; the push is rejected."""


class OutOfSpace(BuildError):
    """The data directory's disk has no room for a build; the push is rejected before anything is written."""

    status_code = 507


class DeployError(ShipyardError):
    """A release could not go live; the previous release keeps serving."""


class ServerErrorAtStart(DeployError):
    """A new web instance listened but answered its health check with a server error (5xx)."""


class ReleasePhaseFailed(DeployError):
    """The Procfile's `release:` command failed; the release never went live."""


class PlatformError(ShipyardError):
    """A part of the platform itself (edge, supervisor, store) failed."""

    status_code = 500


class AlreadyRunning(PlatformError):
    pass
