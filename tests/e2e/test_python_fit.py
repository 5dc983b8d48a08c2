"""Python chosen to fit the dependencies, through real pushes: an app with 2022-era pins and no Python pin
deploys on the newest Python its wheels exist for; a failed install names the package, the Python and the fix.

Needs the machine's pyenv Pythons 3.10–3.13 (facts.md) and the package index (uv downloads the wheels).
"""

from __future__ import annotations

import re

from .harness import Shipyard

FIT_LINE = re.compile(r"remote: -----> No Python pin; greenlet==3\.0\.1 has no wheel for Python 3\.13; "
                      r"markupsafe==2\.0\.1 has no wheel for Python 3\.12 or 3\.11 → using Python (3\.10\.\d+)\. "
                      r"Pin it with a \.python-version file \(echo 3\.10 > \.python-version\)\.")


def test_old_pins_deploy_on_the_newest_python_they_have_wheels_for(shipyard: Shipyard) -> None:
    shipyard.cli("apps", "create", "oldpins")
    work = shipyard.checkout("old-pins", "oldpins")
    pushed = shipyard.push(work)
    fit = FIT_LINE.search(pushed.err)
    assert fit, pushed.err
    python = fit.group(1)
    assert shipyard.get("oldpins").text == f"Hello from old pins on Python {python} (psycopg2 2.9.3, greenlet 3.0.1)\n"

    # A code-only redeploy keeps that Python and its virtualenv without asking uv again.
    (work / "app.py").write_text((work / "app.py").read_text().replace("Hello from", "Hi from"))
    shipyard.commit(work, "code only")
    again = shipyard.push(work).err
    assert f"remote: -----> No Python pin; using Python {python}, as the earlier build of these dependencies did" \
        in again
    assert "remote: -----> Reusing the virtualenv of an earlier build" in again
    assert not FIT_LINE.search(again)
    assert shipyard.get("oldpins").text.startswith(f"Hi from old pins on Python {python}")

    # A pin is honoured; when the pins do not install on it, the error says which release and which Python would.
    (work / ".python-version").write_text("3.13\n")
    shipyard.commit(work, "pin 3.13")
    pinned = shipyard.push(work, check=False)
    assert pinned.code != 0
    assert "remote: -----> Using Python 3.13." in pinned.err and "(from .python-version)" in pinned.err
    assert "remote: !     greenlet==3.0.1 does not install on Python 3.13." in pinned.err
    assert "it has no wheel for Python 3.13, and building it from source failed" in pinned.err
    assert re.search(r"upgrade it in requirements\.txt to greenlet==3\.\d+\.\d+ \(the first release with a wheel for "
                     r"Python 3\.13\) or newer; or pin Python 3\.12: `echo 3\.12 > \.python-version`", pinned.err)
    assert "Could not install requirements.txt" not in pinned.err
    assert shipyard.get("oldpins").text.startswith(f"Hi from old pins on Python {python}")  # v2 keeps serving


def test_a_dependency_no_python_here_installs_names_itself_and_its_successor(shipyard: Shipyard) -> None:
    shipyard.cli("apps", "create", "py2dep")
    failed = shipyard.push(shipyard.checkout("broken-py2-dependency", "py2dep"), check=False)
    assert failed.code != 0
    newest = re.search(r"remote: -----> No Python pin; using Python (3\.13\.\d+), the newest installed \(your other "
                       r"dependencies have wheels for it\)\. mysql-python==1\.2\.5 has no wheel for any Python here: "
                       r"built from source\.", failed.err)
    assert newest, failed.err
    assert (f"remote: !     mysql-python==1.2.5 does not install on Python {newest.group(1)}: it has no wheel for "
            "Python 3.13, and building it from source failed (ModuleNotFoundError: No module named 'ConfigParser'); "
            "it was written for Python 2.") in failed.err
    assert "mysqlclient is its maintained successor" in failed.err
    assert "add the package that provides it to your dependencies" not in failed.err  # not a module to add
