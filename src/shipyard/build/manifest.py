"""The slug's manifest: what the build found out, read by the release stage."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Manifest:
    process_types: dict[str, str]  # {"web": "<shell command>", "worker": …, "release": …}
    start_rule: str  # which rule gave "web": APP_RUN | Procfile | wsgi.py | app.py
    python: str  # version of the venv's interpreter, e.g. "3.11.7"
    requirements_digest: str  # sha256 of requirements.txt + python version (venv reuse key)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Manifest":
        return cls(**json.loads(text))
