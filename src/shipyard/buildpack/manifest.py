"""The slug's manifest: what the build found out, read by the release stage."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Manifest:
    process_types: dict[str, str]  # {"web": "<shell command>", "worker": …, "release": …}
    start_rule: str  # which rule gave "web", e.g. "Procfile" or "manage.py (Django)"
    python: str  # version of the venv's interpreter, e.g. "3.11.7"
    requirements_digest: str  # the reusable venv's key (or "venv" when it belongs to this slug alone)
    framework: str | None = None  # django | asgi | wsgi
    env: dict[str, str] = field(default_factory=dict)  # from .s2i/environment, set at run time too

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Manifest":
        return cls(**json.loads(text))
