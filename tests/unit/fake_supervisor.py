"""A supervisor and its instances as the control loops see them (the autoscaler, the waker), for unit tests."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FakeInstance:
    name: str
    address: str
    routable: bool = True

    @property
    def spec(self):  # type: ignore[no-untyped-def]
        return type("Spec", (), {"process_type": self.name.split(".")[0], "name": self.name})()


@dataclass
class FakeSupervisor:
    running: list[FakeInstance] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def frozen(self, app: str) -> bool:
        return False

    def instances(self, app: str) -> list[FakeInstance]:
        return self.running

    def app_log(self, app: str):  # type: ignore[no-untyped-def]
        return type("Log", (), {"write": lambda _, source, text: self.lines.append(text)})()
