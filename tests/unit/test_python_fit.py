"""Python chosen to fit the dependencies: uv's errors read as values, the choice, and what the build log says.

tests/unit/uv_errors/ holds uv 0.13's real output, captured on this machine (`uv pip compile --only-binary
:all:`, `uv pip install`, `uv sync --frozen --dry-run`) for the pins named in each file.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from packaging.version import Version

from shipyard.buildpack.advice import Advice, explain, removal_fix, removal_problem
from shipyard.buildpack.dependencies import DependencyPlan, locked_wheel_packages
from shipyard.buildpack.fit import Verdict, chosen, decisive, join_versions, verdict
from shipyard.buildpack.fitting import fit_python
from shipyard.buildpack.install import installed_packages, venv_digest
from shipyard.buildpack.python import Interpreter, PythonRequest, choose_python, install_roots, newest_per_minor
from shipyard.buildpack.uvfail import UvFailure, parse_uv_failure, pins

ERRORS = Path(__file__).parent / "uv_errors"
APPS = Path(__file__).parents[1] / "apps"


def py(version: str) -> Interpreter:
    return Interpreter(Version(version), Path(f"/py/{version}/bin/python"))


HERE = [py(v) for v in ("3.13.0", "3.12.1", "3.11.7", "3.11.2", "3.10.13", "3.6.15")]
FITS = [py(v) for v in ("3.13.0", "3.12.1", "3.11.7", "3.10.13", "3.6.15")]  # the newest patch of each minor


def uv_output(name: str) -> list[str]:
    return (ERRORS / name).read_text().splitlines()


@pytest.mark.parametrize("name,expected", [
    ("compile-no-wheel.txt", UvFailure("no-wheel", "greenlet", "3.0.1")),
    ("sync-no-build.txt", UvFailure("no-wheel", "greenlet", "3.0.1")),
    ("compile-requires-python.txt", UvFailure("requires-python", "flask", "2.3.3", ">=3.8")),
    ("compile-requires-python-range.txt", UvFailure("requires-python", "flask", "", ">=3.8")),
    ("install-requires-python.txt", UvFailure("requires-python", "django", "4.2.16", ">=3.8")),
    ("sync-requires-python.txt", UvFailure("requires-python", "", "", ">=3.8")),
    ("compile-not-found.txt", UvFailure("not-found", "shipyard-no-such-package-xyz", "",
                                        "Because shipyard-no-such-package-xyz was not found in the package registry "
                                        "and you require shipyard-no-such-package-xyz==1.0, we can conclude that "
                                        "your requirements are unsatisfiable.")),
    ("compile-no-version.txt", UvFailure("no-version", "flask", "9.9.9", "Because there is no version of "
                                         "flask==9.9.9 and you require flask==9.9.9, we can conclude that your "
                                         "requirements are unsatisfiable.")),
    ("compile-offline-not-in-cache.txt", UvFailure("needs-network")),
    ("compile-offline-needs-download.txt", UvFailure("needs-network")),
    ("install-build-greenlet.txt",
     UvFailure("build-failed", "greenlet", "3.0.1", '#error "this header requires Py_BUILD_CORE define"')),
    ("install-build-mysql-python.txt",
     UvFailure("build-failed", "mysql-python", "1.2.5", "ModuleNotFoundError: No module named 'ConfigParser'")),
])
def test_uv_errors_as_values(name, expected):
    assert parse_uv_failure(uv_output(name)) == expected


def test_which_failures_another_python_may_fix_and_which_a_cached_answer_settles():
    assert parse_uv_failure(uv_output("install-build-greenlet.txt")).python_related
    assert not parse_uv_failure(uv_output("compile-not-found.txt")).python_related
    assert parse_uv_failure(uv_output("install-build-mysql-python.txt")).python2_only
    # A release's files never change: --offline's "no wheel" stands. "No such version" may be a stale cache.
    assert parse_uv_failure(uv_output("compile-no-wheel.txt")).settled
    assert not parse_uv_failure(uv_output("compile-no-version.txt")).settled
    assert not parse_uv_failure(uv_output("compile-offline-needs-download.txt")).settled


def test_pins_of_a_resolution_and_of_a_dry_run():
    assert pins(uv_output("compile-ok.txt"))["psycopg2-binary"] == "2.9.3"
    assert pins(uv_output("sync-dry-run-ok.txt")) == {
        "blinker": "1.9.0", "click": "8.5.1", "flask": "3.1.3", "itsdangerous": "2.2.0", "jinja2": "3.1.6",
        "markupsafe": "3.0.4", "werkzeug": "3.1.9"}


def test_candidates_are_the_newest_patch_of_each_minor_newest_first():
    assert newest_per_minor(reversed(HERE)) == FITS
    unpinned = choose_python(PythonRequest("", "default"), HERE)
    assert unpinned.interpreter == HERE[0] and list(unpinned.candidates) == FITS
    assert unpinned.allowed == "No Python pin"
    ranged = choose_python(PythonRequest(">=3.10,<3.13", "pyproject.toml"), HERE)
    assert list(ranged.candidates) == [py("3.12.1"), py("3.11.7"), py("3.10.13")]
    assert ranged.allowed == "pyproject.toml allows Python >=3.10,<3.13"
    assert choose_python(PythonRequest("3.12", ".python-version"), HERE).candidates == ()  # a pin is honoured
    assert choose_python(PythonRequest(">=3.13", "pyproject.toml"), HERE).candidates == ()  # nothing to choose


def test_join_versions():
    assert join_versions(["3.13"]) == "3.13"
    assert join_versions(["3.12", "3.11"]) == "3.12 or 3.11"
    assert join_versions(["3.13", "3.12", "3.11", "3.10", "3.9", "3.8", "3.7"]) == "3.7–3.13"
    assert join_versions(["3.13", "3.11", "3.10", "3.9", "3.6"]) == "3.13, 3.9–3.11 or 3.6"


def no_wheel(python: str, package: str, version: str) -> Verdict:
    return verdict(py(python), UvFailure("no-wheel", package, version), {})


def test_the_log_line_says_which_python_and_why():
    newest = chosen([verdict(py("3.13.0"), None, {"flask": "3.1.3"})], FITS, "No Python pin")
    assert newest.interpreter == py("3.13.0")
    assert newest.line == ("No Python pin; using Python 3.13.0, the newest installed (your dependencies have "
                           "wheels for it).")
    older = chosen([no_wheel("3.13.0", "greenlet", "3.0.1"), no_wheel("3.12.1", "markupsafe", "2.0.1"),
                    no_wheel("3.11.7", "markupsafe", "2.0.1"), verdict(py("3.10.13"), None, {})], FITS,
                   "No Python pin")
    assert older.interpreter == py("3.10.13")
    assert older.line == ("No Python pin; greenlet==3.0.1 has no wheel for Python 3.13; markupsafe==2.0.1 has no "
                          "wheel for Python 3.12 or 3.11 → using Python 3.10.13. Pin it with a .python-version "
                          "file (echo 3.10 > .python-version).")
    built = chosen([no_wheel("3.13.0", "greenlet", "3.0.1"), verdict(py("3.12.1"), None, {})], FITS,
                   "pyproject.toml allows Python >=3.9", built=["sqlalchemy==1.2.19"])
    assert built.line.startswith("pyproject.toml allows Python >=3.9; greenlet==3.0.1 has no wheel for Python 3.13 "
                                 "→ using Python 3.12.1.")
    assert built.line.endswith("sqlalchemy==1.2.19 has no wheel for any Python here: built from source.")
    unchecked = chosen([], FITS, "No Python pin", "the dependencies of setup.py are only known by running it")
    assert unchecked.interpreter == py("3.13.0") and "not checked against your dependencies" in unchecked.line
    nothing = chosen([no_wheel(v.version.public, "x", "1") for v in FITS], FITS, "No Python pin")
    assert nothing.interpreter == py("3.13.0")
    assert nothing.line == ("No Python pin; no Python here has wheels for all your dependencies (x==1 has no wheel "
                            "for Python 3.10–3.13 or 3.6) → trying the newest, Python 3.13.0.")


def test_a_python_that_removed_a_module_the_app_imports_does_not_fit():
    django40 = {"django": "4.0.10", "gunicorn": "21.2.0"}
    rejected = verdict(py("3.13.0"), None, django40)
    assert not rejected.fits and decisive(rejected)
    assert rejected.reason == "django 4.0.10 imports cgi, which is gone from Python {pythons}"
    assert verdict(py("3.12.1"), None, django40).fits
    assert verdict(py("3.13.0"), None, {"django": "4.1.13"}).fits
    removal, message = removal_problem(django40, Version("3.13.0"))
    assert message == ("django 4.0.10 imports the cgi module, which Python 3.13.0 no longer has (removed in 3.13): "
                       "the app would fail to start.")
    assert removal_fix(removal) == "Upgrade django to 4.1 or newer, or pin Python 3.12: `echo 3.12 > .python-version`."
    assert removal_problem({"eventlet": "0.33.3"}, Version("3.11.7")) is None


def test_failures_that_say_nothing_about_python_stop_the_search():
    assert not decisive(verdict(py("3.13.0"), UvFailure("not-found", "nope"), {}))
    assert not decisive(verdict(py("3.13.0"), UvFailure("build-failed", "proj", "", "x"), {}))  # a path to build
    assert decisive(no_wheel("3.13.0", "greenlet", "3.0.1"))


class FakeResolver:
    """uv's answers from a table: (python, left out) → failure or pins; which releases have wheels where."""

    def __init__(self, answers, wheels):  # type: ignore[no-untyped-def]
        self.answers, self.wheels, self.asked = answers, wheels, []

    async def check(self, python, left_out):  # type: ignore[no-untyped-def]
        self.asked.append((python.version.public, tuple(sorted(left_out))))
        failure = self.answers.get((python.version.public, tuple(sorted(left_out))))
        return verdict(python, failure, {} if failure else {"flask": "3.1.3"})

    async def wheel_pythons(self, package, version, pythons):  # type: ignore[no-untyped-def]
        return [p for p in pythons if p.version.public in self.wheels.get(package, ())]


def test_the_search_stops_at_the_first_fit_and_leaves_out_releases_no_python_has_wheels_for():
    greenlet, sqlalchemy = UvFailure("no-wheel", "greenlet", "3.0.1"), UvFailure("no-wheel", "sqlalchemy", "1.2.19")
    answers = {("3.13.0", ()): greenlet, ("3.13.0", ("sqlalchemy",)): greenlet}
    answers |= {(v.version.public, ()): sqlalchemy for v in FITS[1:]}
    fake = FakeResolver(answers, {"greenlet": ("3.12.1", "3.11.7", "3.10.13")})
    choice = choose_python(PythonRequest("", "default"), HERE)
    fit = asyncio.run(fit_python(choice, fake))  # type: ignore[arg-type]
    assert fit.interpreter == py("3.12.1")
    assert fit.line.endswith("sqlalchemy==1.2.19 has no wheel for any Python here: built from source.")
    assert fake.asked[-2:] == [("3.13.0", ("sqlalchemy",)), ("3.12.1", ("sqlalchemy",))]

    common = FakeResolver({}, {})
    assert asyncio.run(fit_python(choice, common)).interpreter == py("3.13.0")  # type: ignore[arg-type]
    assert common.asked == [("3.13.0", ())]  # one question when the newest fits


def test_an_install_failure_names_the_package_the_python_and_the_fixes():
    failure = parse_uv_failure(uv_output("install-build-greenlet.txt"))
    advice = Advice((Version("3.12.1"), Version("3.11.7")), "3.1.0")
    message, hint = explain(failure, Version("3.13.0"), "requirements.txt", [p.version for p in FITS], advice)
    assert message == ("greenlet==3.0.1 does not install on Python 3.13.0: it has no wheel for Python 3.13, and "
                       "building it from source failed (#error \"this header requires Py_BUILD_CORE define\").")
    assert hint == ("Fix: upgrade it in requirements.txt to greenlet==3.1.0 (the first release with a wheel for "
                    "Python 3.13) or newer; or pin Python 3.12: `echo 3.12 > .python-version` (greenlet==3.0.1 has "
                    "wheels for Python 3.12 or 3.11 here). The full output of uv is above.")

    mysql = parse_uv_failure(uv_output("install-build-mysql-python.txt"))
    message, hint = explain(mysql, Version("3.13.0"), "requirements.txt", [p.version for p in FITS])
    assert message.endswith("(ModuleNotFoundError: No module named 'ConfigParser'); it was written for Python 2.")
    assert hint.startswith("Replace it in requirements.txt: no later release of mysql-python has a wheel for Python "
                           "3.13, and no Python on this Shipyard (3.6.15–3.13.0) has one for mysql-python==1.2.5; "
                           "mysqlclient is its maintained successor.")


def test_other_install_failures_keep_blaming_the_requirement():
    old = parse_uv_failure(uv_output("install-requires-python.txt"))
    message, hint = explain(old, Version("3.7.16"), "requirements.txt", [Version("3.13.0"), Version("3.7.16")])
    assert message == "django==4.2.16 requires Python>=3.8; this build uses Python 3.7.16."
    assert hint.startswith("Fix: pin Python 3.13: `echo 3.13 > .python-version` (this Shipyard has 3.13.0); or "
                           "change django==4.2.16 in requirements.txt to a release that supports Python 3.7.")
    missing = parse_uv_failure(uv_output("compile-not-found.txt"))
    message, hint = explain(missing, Version("3.13.0"), "requirements.txt", [Version("3.13.0")])
    assert message == ("Could not install requirements.txt: Because shipyard-no-such-package-xyz was not found in "
                       "the package registry and you require shipyard-no-such-package-xyz==1.0, we can conclude that "
                       "your requirements are unsatisfiable.")
    assert hint == ("shipyard-no-such-package-xyz is not on the package index: check its name in requirements.txt "
                    "and push again.")


def test_uv_lock_packages_with_wheels():
    assert locked_wheel_packages((APPS / "uv-app" / "uv.lock").read_text()) == (
        "blinker", "click", "colorama", "flask", "importlib-metadata", "itsdangerous", "jinja2", "markupsafe",
        "werkzeug", "zipp")
    assert locked_wheel_packages('[[package]]\nname = "old"\nversion = "1"\nsource = { registry = "x" }\n'
                                 'sdist = { url = "x" }\n') == ()


def test_a_fitted_venv_is_not_one_a_pin_made():
    plan, python = DependencyPlan("requirements.txt"), py("3.12.1")
    assert venv_digest(plan, {"requirements.txt": "flask"}, python, (), {}) != \
        venv_digest(plan, {"requirements.txt": "flask"}, python, (), {}, fitted=True)


def test_installed_packages_from_dist_info_names(tmp_path):
    site = tmp_path / "lib" / "python3.12" / "site-packages"
    site.mkdir(parents=True)
    for name in ("Django-4.0.10.dist-info", "psycopg2_binary-2.9.3.dist-info", "django"):
        (site / name).mkdir()
    assert installed_packages(tmp_path) == {"django": "4.0.10", "psycopg2-binary": "2.9.3"}


def test_a_build_sees_every_interpreter_it_may_ask_uv_about():
    pythons = [Interpreter(Version("3.12.1"), Path("/root/.pyenv/versions/3.12.1/bin/python")),
               Interpreter(Version("3.12.9"), Path("/root/.pyenv/versions/3.12.1/bin/python3")),
               Interpreter(Version("3.11.2"), Path("/usr/bin/python3.11"))]  # the system's: /usr is bound anyway
    assert install_roots(pythons) == [Path("/root/.pyenv/versions/3.12.1")]


def test_a_requirement_that_must_be_built_to_be_read_leaves_python_unchecked():
    path = verdict(py("3.13.0"), UvFailure("build-failed", "proj", "", "x"), {})
    fit = chosen([], FITS, "No Python pin", path.reason)
    assert fit.line == ("No Python pin; using Python 3.13.0, the newest installed (not checked against your "
                        "dependencies: proj has to be built to know its dependencies)")
