"""What the dashboard's pages show, computed from the store's records: pure functions, tested by value."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

# Log lines worth pointing at when a step failed: what Python, pip/uv, gunicorn and the platform say on failure.
CULPRIT = re.compile(r"Traceback|Error\b|Error:|error:|ERROR|fatal:|No module named|DisallowedHost|not listening|"
                     r"No solution found|Because .* depends on|exited with|[Ff]ailed|Exception")
MAX_CULPRITS = 3


@dataclass(frozen=True)
class LogLine:
    number: int  # 1-based within the step
    text: str
    culprit: bool = False


@dataclass(frozen=True)
class StepView:
    name: str
    status: str  # succeeded | failed | running
    seconds: float | None
    lines: tuple[LogLine, ...]
    anchor: str  # the step's id in the page

    def line_anchor(self, number: int) -> str:
        return f"{self.anchor}-line-{number}"


@dataclass(frozen=True)
class FixBox:
    """"How to fix this app": what went wrong, what to do, and the log lines that show it."""

    step: str
    cause: str
    fix: str
    evidence: tuple[tuple[str, LogLine], ...]  # (anchor, line)


@dataclass(frozen=True)
class DeployView:
    id: int
    description: str
    status: str
    release: int | None
    started_at: datetime
    seconds: float | None
    steps: tuple[StepView, ...]
    fix: FixBox | None = None


def step_anchor(deploy_id: int, name: str) -> str:
    return f"deploy-{deploy_id}-{re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-')}"


def deploy_view(record: dict[str, object], app: str = "") -> DeployView:
    """One deploy as `Store.list_deploys` gives it (`app`: its name, put into hints' `<app>` placeholders)."""
    deploy_id = int(record["id"])  # type: ignore[arg-type]
    steps: list[StepView] = []
    for raw in record.get("steps") or []:  # type: ignore[union-attr]
        started, finished = raw.get("started"), raw.get("finished")
        lines = [str(line) for line in raw.get("log") or []]
        failed = raw.get("status") == "failed"
        culprits = _culprit_numbers(lines) if failed else set()
        steps.append(StepView(
            name=str(raw.get("name")), status=str(raw.get("status")),
            seconds=(finished - started) if isinstance(finished, (int, float)) and isinstance(started, (int, float)) else None,
            lines=tuple(LogLine(n, text, n in culprits) for n, text in enumerate(lines, 1)),
            anchor=step_anchor(deploy_id, str(raw.get("name")))))
    started_at = datetime.fromisoformat(str(record["started_at"])).replace(tzinfo=timezone.utc)
    finished = record.get("finished_at")
    seconds = ((datetime.fromisoformat(str(finished)).replace(tzinfo=timezone.utc) - started_at).total_seconds()
               if finished else None)
    status = str(record["status"])
    return DeployView(id=deploy_id, description=str(record["description"]), status=status,
                      release=record.get("release"), started_at=started_at, seconds=seconds,  # type: ignore[arg-type]
                      steps=tuple(steps), fix=fix_box(status, steps, record.get("error"), record.get("hint"), app))


def _culprit_numbers(lines: list[str]) -> set[int]:
    """The last few lines that look like the failure, 1-based (the end of a log is where the reason is)."""
    numbers = [n for n, text in enumerate(lines, 1) if CULPRIT.search(text)]
    if not numbers and lines:
        numbers = [len(lines)]
    return set(numbers[-MAX_CULPRITS:])


def fix_box(status: str, steps: list[StepView], error: object, hint: object, app: str = "") -> FixBox | None:
    if status != "failed":
        return None
    failed = next((s for s in steps if s.status == "failed"), None)
    # The first line says what failed; the rest (an instance's last output) is in the step's log, linked below.
    cause = str(error).splitlines()[0] if error else "The deploy failed."
    fix = str(hint) if hint else ("Read the failed step's log below; push a fix, or roll back to a release that "
                                 "worked.")
    if app:
        fix = fix.replace("<app>", app)
    evidence = tuple((failed.line_anchor(line.number), line) for line in failed.lines if line.culprit) if failed else ()
    return FixBox(step=failed.name if failed else "deploy", cause=cause, fix=fix, evidence=evidence)


@dataclass(frozen=True)
class AppRow:
    name: str
    url: str
    release: int | None
    state: str  # running | deploying | crashed | failed | scaled to zero | new | stopped | unreachable | damaged
    instances: int
    last_deploy: str  # "Deploy abc1234 by Jane: Fix the login page"
    last_deploy_at: datetime | None
    last_deploy_status: str | None
    requests: list[int] = field(default_factory=list)  # per minute, last hour


def app_state_label(*, platform_state: str, deploying: bool, damaged: bool, last_deploy_status: str | None,
                    formation: dict[str, int]) -> str:
    """The app's state in a word a user acts on: deploying wins, then what its URL does now."""
    if damaged:
        return "damaged"
    if deploying:
        return "deploying"
    if platform_state == "new":
        return "failed" if last_deploy_status == "failed" else "new"
    if platform_state == "zero" or (formation and all(count == 0 for count in formation.values())):
        return "scaled to zero"
    if platform_state == "frozen":
        return "frozen"
    if platform_state == "up":
        return "running"
    if platform_state == "crashed":
        return "crashed"
    if platform_state == "down" and last_deploy_status == "failed":
        return "failed"
    return {"down": "stopped", "starting": "starting"}.get(platform_state, platform_state)


def ago(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "never"
    seconds = max(0, int((now - when).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"
