"""Readiness decisions as values: observations in, verdicts out."""

from __future__ import annotations

from shipyard.runtime.readiness import (Observation, Probe, Readiness, ReadinessRules, gunicorn_workers,
                                        refused_host)

RULES = ReadinessRules(settle=1.0, no_answer_limit=10.0, server_error_limit=5.0, elsewhere_limit=2.0)
OK = Probe(200)


def run(*observations: Observation) -> list[str]:
    readiness = Readiness(RULES)
    return [f"{v.state} {v.cause}".strip() for v in (readiness.observe(o) for o in observations)]


def test_a_healthy_answer_counts_only_after_the_settle_period() -> None:
    assert run(Observation(0.3, True, probe=OK), Observation(0.9, True, probe=OK),
               Observation(1.0, True, probe=OK)) == ["waiting", "waiting", "ready"]


def test_listening_is_not_enough_without_an_http_answer() -> None:
    silent = Probe(None, "no response within 5 s", waited=5.0)
    # Counted from when the first unanswered probe went out (0.5 s), not from when it gave up.
    assert run(Observation(5.5, True, probe=silent), Observation(10.6, True, probe=silent)) == [
        "waiting", "failed no answer"]
    # An answer in between starts the count again.
    assert run(Observation(0.5, True, probe=silent), Observation(6, True, probe=OK),
               Observation(11, True, probe=silent))[-1] == "waiting"


def test_a_gunicorn_master_without_workers_is_not_ready() -> None:
    assert run(Observation(2, True, probe=OK, workers=0), Observation(3, True, probe=OK, workers=2)) == [
        "waiting", "ready"]
    assert run(Observation(2, True, probe=OK, workers=None)) == ["ready"]  # not gunicorn


def test_server_errors_fail_after_their_limit_and_a_warm_up_503_does_not() -> None:
    assert run(Observation(1, True, probe=Probe(503)), Observation(2, True, probe=OK)) == ["waiting", "ready"]
    verdicts = Readiness(RULES)
    for at in (1, 3, 5):
        verdicts.observe(Observation(at, True, probe=Probe(500)))
    last = verdicts.observe(Observation(6.1, True, probe=Probe(500)))
    assert (last.state, last.cause, last.last_status) == ("failed", "server error", 500)


def test_listening_only_elsewhere_fails_within_the_limit_not_the_boot_timeout() -> None:
    wrong = (("0.0.0.0", 5000),)
    assert run(Observation(0.5, False, wrong), Observation(1.5, False, wrong),
               Observation(2.6, False, wrong)) == ["waiting", "waiting", "failed wrong port"]
    assert run(Observation(0.5, False, wrong), Observation(1.0, False), Observation(2.6, False, wrong)) == [
        "waiting", "waiting", "waiting"]


def test_a_refused_hostname_fails_at_once() -> None:
    assert run(Observation(0.5, True, probe=Probe(400, host_refused=True))) == ["failed host refused"]
    assert run(Observation(1.5, True, probe=Probe(404))) == ["ready"]  # no page at / is fine


def test_django_refusing_the_hostname_is_told_apart_from_a_plain_400() -> None:
    assert refused_host(400, "", ["Invalid HTTP_HOST header: 'todo.localhost'. You may need to add …"], None)
    assert refused_host(400, "Bad request", [], 200)  # localhost is accepted, our host is not
    assert refused_host(400, "<html><body>\n  <h1>Bad Request (400)</h1><p></p>\n</body></html>", [], 400)  # DEBUG off
    assert not refused_host(400, '{"detail": "missing parameter"}', [], 400)
    assert not refused_host(200, "Invalid HTTP_HOST header", [], None)


def test_gunicorn_workers_are_the_masters_children() -> None:
    tree = [(1, 0, "bwrap --args 5"), (2, 1, "/bin/bash -c -- . /run/shipyard/launch\ngunicorn app:app"),
            (3, 2, "/slug/venv/bin/python /slug/venv/bin/gunicorn --bind 0.0.0.0:5000 app:app"),
            (4, 3, "/slug/venv/bin/python /slug/venv/bin/gunicorn --bind 0.0.0.0:5000 app:app"),
            (5, 3, "gunicorn: worker [app:app]")]
    assert gunicorn_workers(tree) == 2
    assert gunicorn_workers(tree[:3]) == 0
    assert gunicorn_workers([(1, 0, "uvicorn main:app --port 5000")]) is None


def test_an_instance_woken_for_a_waiting_request_is_observed_quickly_at_first() -> None:
    waking = ReadinessRules(settle=0.0, quick_for=1.0)
    assert waking.pause(0.2) == 0.005 and waking.pause(1.5) == 0.05
    assert ReadinessRules().pause(0.0) == 0.05  # a deploy's instance: every 50 ms from the start
    # No settle period: the first healthy answer (with live workers) is enough.
    assert Readiness(waking).observe(Observation(0.1, True, probe=Probe(200), workers=2)).state == "ready"
