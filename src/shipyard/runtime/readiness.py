"""When is a web instance ready, and when is a running one dead? Pure decisions over observations.

Readiness is stricter than "the port accepts a connection": gunicorn's master opens the port before its
workers import the app, so a release whose import fails a second later would look ready. An instance is
ready once its health path answers below 500 through its own address, it has stayed up through a settle
period, and (for gunicorn) its master has live workers. What fails says why, cause by cause.

`instance.py` observes the process (HTTP probes, sockets, the process tree) and feeds this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ReadinessRules:
    settle: float = 0.5  # seconds an instance must have been up (from its start) before it counts as ready
    probe_timeout: float = 5.0  # one HTTP probe's wait for a response
    no_answer_limit: float = 30.0  # listening, but no HTTP response at all for this long: it hangs
    server_error_limit: float = 5.0  # answering 5xx for this long (a warming-up app may 503 for a moment)
    elsewhere_limit: float = 1.5  # listening, but only on other ports than $PORT, for this long
    interval: float = 0.05  # between observations of a starting instance ...
    quick_for: float = 0.0  # ... except for this long from its start (a request waits on it), every 5 ms
    quick_interval: float = 0.005

    def pause(self, elapsed: float) -> float:
        """Seconds to the next observation of an instance started `elapsed` seconds ago."""
        return self.quick_interval if elapsed < self.quick_for else self.interval


@dataclass(frozen=True)
class LivenessRules:
    interval: float = 10.0  # between probes of a running instance
    timeout: float = 5.0
    failures: int = 3  # consecutive probes without a response before it is restarted


@dataclass(frozen=True)
class Probe:
    """One HTTP request to the instance's health path. status None: no response (`error` says what)."""

    status: int | None
    error: str = ""  # "refused", "timed out", "connection closed" …
    waited: float = 0.0  # seconds from sending it to its outcome
    host_refused: bool = False  # a 400 for the app's hostname where another Host is accepted (Django's ALLOWED_HOSTS)

    @property
    def answered(self) -> bool:
        return self.status is not None

    @property
    def healthy(self) -> bool:
        return self.status is not None and self.status < 500 and not self.host_refused


@dataclass(frozen=True)
class Observation:
    at: float  # seconds since the process started
    on_port: bool  # something accepts connections on 127.0.0.1:$PORT
    elsewhere: tuple[tuple[str, int], ...] = ()  # other (host, port) its process tree listens on
    probe: Probe | None = None  # made only when on_port
    workers: int | None = None  # live gunicorn workers; None when it is not gunicorn


@dataclass(frozen=True)
class Verdict:
    state: str  # "waiting", "ready" or "failed"
    cause: str = ""  # when failed: "wrong port", "server error", "no answer", "host refused"
    last_status: int | None = None


WAITING = Verdict("waiting")


@dataclass
class Readiness:
    """Folds observations of one starting instance into a verdict; the first "failed" or "ready" is final."""

    rules: ReadinessRules = field(default_factory=ReadinessRules)
    _elsewhere_since: float | None = None
    _unanswered_since: float | None = None
    _errors_since: float | None = None

    def observe(self, seen: Observation) -> Verdict:
        if not seen.on_port:
            self._unanswered_since = self._errors_since = None
            if not seen.elsewhere:
                self._elsewhere_since = None
                return WAITING
            self._elsewhere_since = seen.at if self._elsewhere_since is None else self._elsewhere_since
            if seen.at - self._elsewhere_since >= self.rules.elsewhere_limit:
                return Verdict("failed", "wrong port")
            return WAITING
        self._elsewhere_since = None
        probe = seen.probe
        if probe is None:
            return WAITING
        if not probe.answered:
            if self._unanswered_since is None:  # since the probe went out, not since it gave up
                self._unanswered_since = seen.at - probe.waited
            if seen.at - self._unanswered_since >= self.rules.no_answer_limit:
                return Verdict("failed", "no answer")
            return WAITING
        self._unanswered_since = None
        if probe.host_refused:
            return Verdict("failed", "host refused", probe.status)
        if not probe.healthy:
            self._errors_since = seen.at if self._errors_since is None else self._errors_since
            if seen.at - self._errors_since >= self.rules.server_error_limit:
                return Verdict("failed", "server error", probe.status)
            return Verdict("waiting", last_status=probe.status)
        self._errors_since = None
        if seen.workers == 0 or seen.at < self.rules.settle:
            return WAITING
        return Verdict("ready", last_status=probe.status)


def gunicorn_workers(tree: Sequence[tuple[int, int, str]]) -> int | None:
    """Live workers of the gunicorn master in a process tree of (pid, parent pid, command line).

    The master is the gunicorn process whose parent is not gunicorn; its workers are its children. None
    when no gunicorn runs (uvicorn, Django's runserver …: their readiness is the HTTP answer alone).
    """
    gunicorn = {pid: parent for pid, parent, command in tree if _is_gunicorn(command)}
    masters = [pid for pid, parent in gunicorn.items() if parent not in gunicorn]
    if not masters:
        return None
    return sum(1 for pid, parent in gunicorn.items() if parent in masters)


def _is_gunicorn(command: str) -> bool:
    words = command.split()
    # `gunicorn …`, `/venv/bin/gunicorn …`, `python -m gunicorn …`, and workers renamed by setproctitle.
    return any(w.rsplit("/", 1)[-1] == "gunicorn" or w.startswith("gunicorn:") for w in words[:3])


def disallowed_host_hint(app: str, hostname: str, external_url: str) -> str:
    return (f"Django refused the app's hostname {hostname} (DisallowedHost: it is not in ALLOWED_HOSTS). Add it "
            f"in settings.py, e.g. `ALLOWED_HOSTS = [os.environ.get(\"EXTERNAL_HOSTNAME\", \"localhost\")]`, and "
            f"for forms `CSRF_TRUSTED_ORIGINS = [os.environ.get(\"EXTERNAL_URL\", \"{external_url}\")]` "
            f"(Shipyard sets EXTERNAL_HOSTNAME={hostname} and EXTERNAL_URL={external_url}); or, if your settings "
            f"read it from the environment, `shipyard config set {app} ALLOWED_HOSTS={hostname}`. Then push again.")


def refused_host(status: int | None, body: str, recent_log: Sequence[str], other_host_status: int | None) -> bool:
    """Did a 400 come from the app refusing its hostname? Django says so in the body or log when DEBUG is on;
    with DEBUG off it logs nothing and answers its bare 400 page, which a plain GET of the health path gets
    for little else; and an app that accepts another Host (`localhost`, which the probe tries) tells too."""
    if status != 400:
        return False
    marker = "Invalid HTTP_HOST header"
    if marker in body or any(marker in line or "DisallowedHost" in line for line in recent_log):
        return True
    if "<h1>Bad Request (400)</h1>" in body:
        return True
    return other_host_status is not None and other_host_status < 400
