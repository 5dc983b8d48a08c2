"""Bad input gets a clear error and loses nothing: the running release keeps serving."""

from __future__ import annotations

import shutil
from pathlib import Path

from .harness import APPS, Shipyard


def replace_tree(work: Path, sample: str) -> None:
    for child in work.iterdir():
        if child.name != ".git":
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    shutil.copytree(APPS / sample, work, dirs_exist_ok=True)


def rejected(shipyard: Shipyard, work: Path, sample: str) -> str:
    """Push a broken sample over the live flask-hello: the push fails, v1 keeps serving; its output."""
    replace_tree(work, sample)
    shipyard.commit(work, sample)
    result = shipyard.push(work, check=False)
    assert result.code != 0
    assert shipyard.get("keep").text == "Hello from flask-hello v1\n"
    return result.err


def test_app_name_must_be_a_dns_label(shipyard: Shipyard) -> None:
    result = shipyard.cli("apps", "create", "My_App", check=False)
    assert result.code == 1
    assert "'My_App' is not a valid app name." in result.err
    assert "lowercase letters, digits and dashes" in result.err


def test_duplicate_app(shipyard: Shipyard) -> None:
    shipyard.cli("apps", "create", "twice")
    result = shipyard.cli("apps", "create", "twice", check=False)
    assert result.code == 1 and "An app named 'twice' already exists." in result.err


def test_push_to_an_app_that_does_not_exist(shipyard: Shipyard) -> None:
    work = shipyard.checkout("flask-hello", "ghost")
    result = shipyard.push(work, check=False)
    assert result.code != 0
    assert "remote error: There is no app named 'ghost'. Create it with `shipyard apps create ghost`" in result.err


def test_push_with_a_wrong_token_is_refused(shipyard: Shipyard) -> None:
    shipyard.cli("apps", "create", "locked")
    work = shipyard.checkout("flask-hello", "locked")
    wrong = shipyard.git_url("locked").replace("http://", "http://shipyard:wrong-token@")
    result = shipyard.git(work, "-c", "credential.helper=", "push", wrong, "main", check=False)
    assert result.code != 0
    assert "Authentication failed" in result.err
    assert shipyard.app_info("locked")["release"] is None


def test_cli_with_a_wrong_token(shipyard: Shipyard) -> None:
    env = dict(shipyard.env, SHIPYARD_API_URL=f"http://127.0.0.1:{shipyard.api_port}", SHIPYARD_TOKEN="wrong")
    env.pop("SHIPYARD_DATA_DIR")
    import subprocess

    from .harness import SHIPYARD
    done = subprocess.run([*SHIPYARD, "apps"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "The token is not valid for this Shipyard." in done.stderr


def test_broken_pushes_are_rejected_and_the_live_release_keeps_serving(shipyard: Shipyard) -> None:
    shipyard.cli("apps", "create", "keep", "--boot-timeout", "5")
    work = shipyard.checkout("flask-hello", "keep")
    shipyard.push(work)
    assert shipyard.get("keep").text == "Hello from flask-hello v1\n"

    # No way to run the app.
    err = rejected(shipyard, work, "broken-no-start")
    assert "remote: !     Don't know how to run your application." in err
    for fix in ("APP_RUN", "Procfile", "wsgi.py"):
        assert fix in err
    assert "[remote rejected] main -> main (pre-receive hook declined)" in err

    # A requirement that cannot be installed.
    err = rejected(shipyard, work, "broken-requirements")
    assert ("remote: !     Could not install requirements.txt: Because shipyard-no-such-package-xyz was not "
            "found in the package registry") in err

    # An app that exits at start: the deploy fails with its last log lines.
    err = rejected(shipyard, work, "broken-crash")
    assert "remote: !     Release v2 failed: web.1 exited with code 3 before listening on $PORT." in err
    assert "remote: !       KeyError: DATABASE_URL is not set" in err
    assert ("The app reads the environment variable DATABASE_URL, which is not set: "
            "`shipyard config set <app> DATABASE_URL=...`") in err

    # An app that never listens: fails after the app's deadline (5 s here).
    err = rejected(shipyard, work, "broken-no-listen")
    assert "remote: !     Release v3 failed: web.1 did not listen on $PORT" in err
    assert "within 5 s" in err
    assert "Warming up forever" in err

    # An app listening, but not on $PORT (Flask's `app.run()` defaults): the hint names what it listens on.
    err = rejected(shipyard, work, "broken-wrong-port")
    assert "remote: !     Release v4 failed: web.1 did not listen on $PORT" in err
    assert "remote: !     The app listens on 127.0.0.1:5000, not on $PORT" in err

    releases = shipyard.cli("releases", "keep").out
    assert "v1 (current)" in releases and "failed" in releases
    info = shipyard.app_info("keep")
    assert info["release"] == 1 and info["state"] == "up"
