"""Poetry locks → what Shipyard installs: the main group only, as `poetry install --only main` (Heroku's) does.

The three locks below are what Poetry 1.4.2, 1.8.5 and 2.5.1 wrote for one pyproject.toml (`poetry lock`, trimmed
of hashes and descriptions, the docs group down to mkdocs):

    [tool.poetry.dependencies]
    python = "^3.9"
    flask = "3.1.0"
    redis = {version = "5.2.1", optional = true}       # extras: queue = ["redis"]
    markupsafe = {version = "*", optional = true}      # extras: speedups = ["markupsafe"] (jinja2 needs it anyway)
    [tool.poetry.group.dev.dependencies]
    pytest = "8.3.4"
    [tool.poetry.group.docs]                           # optional = true
    mkdocs = "1.6.1"

They differ only in each package's group lines: `category` (Poetry < 1.5, every non-main group is "dev"), nothing
at all (Poetry 1.5-1.8, lock-version 2.0: the groups and markers are found by walking the dependencies from
pyproject.toml), `groups` and `markers` keyed by group when they differ (Poetry 2, lock-version 2.1).

What each Poetry installs with `poetry install --only main --dry-run` on Linux, CPython 3.11.7 (all three agree):
blinker, click, flask, itsdangerous, jinja2, markupsafe, werkzeug; `redis (5.2.1): Skipped … Not required`
(async-timeout too), colorama (Windows), importlib-metadata and zipp (Python 3.9) left out by their markers.
"""

from __future__ import annotations

import asyncio
import re
import tomllib
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from shipyard.buildpack.dependencies import DependencyPlan, plan_dependencies, requirements_from_poetry_lock
from shipyard.buildpack.install import install_dependencies
from shipyard.buildpack.poetry_lock import ALWAYS, MAX_TERMS, either, main_requirements, python_marker
from shipyard.buildpack.python import Interpreter
from shipyard.errors import BuildError

PYPROJECT = """\
[tool.poetry]
name = "shop"
version = "0.1.0"
description = ""
authors = ["A <a@example.com>"]
packages = [{include = "shop"}]

[tool.poetry.dependencies]
python = "^3.9"
flask = "3.1.0"
redis = {version = "5.2.1", optional = true}
markupsafe = {version = "*", optional = true}

[tool.poetry.extras]
queue = ["redis"]
speedups = ["markupsafe"]

[tool.poetry.group.dev.dependencies]
pytest = "8.3.4"

[tool.poetry.group.docs]
optional = true

[tool.poetry.group.docs.dependencies]
mkdocs = "1.6.1"

[build-system]
requires = ["poetry-core"]
build-backend = "poetry.core.masonry.api"
"""

# Poetry 1.8.5's lock (lock-version 2.0): no group anywhere.
PACKAGES = r"""[[package]]
name = "async-timeout"
version = "5.0.1"
optional = true
python-versions = ">=3.8"

[[package]]
name = "blinker"
version = "1.9.0"
optional = false
python-versions = ">=3.9"

[[package]]
name = "click"
version = "8.1.8"
optional = false
python-versions = ">=3.7"

[package.dependencies]
colorama = {version = "*", markers = "platform_system == \"Windows\""}

[[package]]
name = "colorama"
version = "0.4.6"
optional = false
python-versions = "!=3.0.*,!=3.1.*,!=3.2.*,!=3.3.*,!=3.4.*,!=3.5.*,!=3.6.*,>=2.7"

[[package]]
name = "exceptiongroup"
version = "1.3.2"
optional = false
python-versions = ">=3.7"

[package.dependencies]
typing-extensions = {version = ">=4.6.0", markers = "python_version < \"3.13\""}

[[package]]
name = "flask"
version = "3.1.0"
optional = false
python-versions = ">=3.9"

[package.dependencies]
blinker = ">=1.9"
click = ">=8.1.3"
importlib-metadata = {version = ">=3.6", markers = "python_version < \"3.10\""}
itsdangerous = ">=2.2"
Jinja2 = ">=3.1.2"
Werkzeug = ">=3.1"

[[package]]
name = "importlib-metadata"
version = "8.7.1"
optional = false
python-versions = ">=3.9"

[package.dependencies]
zipp = ">=3.20"

[[package]]
name = "iniconfig"
version = "2.1.0"
optional = false
python-versions = ">=3.8"

[[package]]
name = "itsdangerous"
version = "2.2.0"
optional = false
python-versions = ">=3.8"

[[package]]
name = "jinja2"
version = "3.1.6"
optional = false
python-versions = ">=3.7"

[package.dependencies]
MarkupSafe = ">=2.0"

[[package]]
name = "markupsafe"
version = "3.0.4"
optional = false
python-versions = ">=3.9"

[[package]]
name = "mkdocs"
version = "1.6.1"
optional = false
python-versions = ">=3.8"

[package.dependencies]
click = ">=7.0"
colorama = {version = ">=0.4", markers = "platform_system == \"Windows\""}
importlib-metadata = {version = ">=4.4", markers = "python_version < \"3.10\""}
jinja2 = ">=2.11.1"
markupsafe = ">=2.0.1"
packaging = ">=20.5"

[[package]]
name = "packaging"
version = "26.3"
optional = false
python-versions = ">=3.9"

[[package]]
name = "pluggy"
version = "1.6.0"
optional = false
python-versions = ">=3.9"

[[package]]
name = "pytest"
version = "8.3.4"
optional = false
python-versions = ">=3.8"

[package.dependencies]
colorama = {version = "*", markers = "sys_platform == \"win32\""}
exceptiongroup = {version = ">=1.0.0rc8", markers = "python_version < \"3.11\""}
iniconfig = "*"
packaging = "*"
pluggy = ">=1.5,<2"
tomli = {version = ">=1", markers = "python_version < \"3.11\""}

[[package]]
name = "redis"
version = "5.2.1"
optional = true
python-versions = ">=3.8"

[package.dependencies]
async-timeout = {version = ">=4.0.3", markers = "python_full_version < \"3.11.3\""}

[[package]]
name = "tomli"
version = "2.5.0"
optional = false
python-versions = ">=3.8"

[[package]]
name = "typing-extensions"
version = "4.16.0"
optional = false
python-versions = ">=3.9"

[[package]]
name = "werkzeug"
version = "3.1.9"
optional = false
python-versions = ">=3.9"

[package.dependencies]
markupsafe = ">=2.1.1"

[[package]]
name = "zipp"
version = "3.23.1"
optional = false
python-versions = ">=3.9"

[extras]
queue = ["redis"]
speedups = ["markupsafe"]
"""

# name: (Poetry 1.4.2's `category`, Poetry 2.5.1's `groups`, Poetry 2.5.1's `markers`)
GROUPS: dict[str, tuple[str, list[str], str | dict[str, str] | None]] = {
    "async-timeout": ("main", ["main"], 'extra == "queue" and python_full_version < "3.11.3"'),
    "blinker": ("main", ["main"], None),
    "click": ("main", ["main", "docs"], None),
    "colorama": ("main", ["main", "dev", "docs"], {"main": 'platform_system == "Windows"',
                                                   "dev": 'sys_platform == "win32"',
                                                   "docs": 'platform_system == "Windows"'}),
    "exceptiongroup": ("dev", ["dev"], 'python_version < "3.11"'),
    "flask": ("main", ["main"], None),
    "importlib-metadata": ("main", ["main", "docs"], 'python_version == "3.9"'),
    "iniconfig": ("dev", ["dev"], None),
    "itsdangerous": ("main", ["main"], None),
    "jinja2": ("main", ["main", "docs"], None),
    "markupsafe": ("main", ["main", "docs"], None),
    "mkdocs": ("dev", ["docs"], None),
    "packaging": ("dev", ["dev", "docs"], None),
    "pluggy": ("dev", ["dev"], None),
    "pytest": ("dev", ["dev"], None),
    "redis": ("main", ["main"], 'extra == "queue"'),
    "tomli": ("dev", ["dev"], 'python_version < "3.11"'),
    "typing-extensions": ("dev", ["dev"], 'python_version < "3.11"'),
    "werkzeug": ("main", ["main"], None),
    "zipp": ("main", ["main", "docs"], 'python_version == "3.9"'),
}

POETRY_INSTALLS = {"blinker", "click", "flask", "itsdangerous", "jinja2", "markupsafe", "werkzeug"}


def toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def lock(poetry: str) -> str:
    """The lock Poetry `poetry` wrote: "1.4.2" (category), "1.8.5" (no groups) or "2.5.1" (groups, markers)."""
    def group_lines(match: re.Match[str]) -> str:
        category, groups, markers = GROUPS[match[1]]
        if poetry == "1.4.2":
            return f'{match[0]}category = "{category}"\n'
        if poetry == "1.8.5":
            return match[0]
        lines = f"{match[0]}groups = [{', '.join(toml_string(g) for g in groups)}]\n"
        if isinstance(markers, str):
            lines += f"markers = {toml_string(markers)}\n"
        elif markers:
            lines += "markers = {" + ", ".join(f"{g} = {toml_string(m)}" for g, m in markers.items()) + "}\n"
        return lines
    packages = re.sub(r'(?m)^name = "([^"]+)"\n(?:.*\n)*?python-versions = .*\n', group_lines, PACKAGES)
    version = "2.1" if poetry == "2.5.1" else "2.0"
    return (f"# This file is automatically @generated by Poetry {poetry} and should not be changed by hand.\n\n"
            f'{packages}\n[metadata]\nlock-version = "{version}"\npython-versions = "^3.9"\n')


def installs(lines: tuple[str, ...], python: str = "3.11.7", system: str = "Linux", *extras: str) -> set[str]:
    """What `uv pip install -r` installs from these lines on that machine: the lines whose marker holds."""
    environment = {**default_environment(), "python_full_version": python,
                   "python_version": ".".join(python.split(".")[:2]), "platform_system": system,
                   "sys_platform": {"Linux": "linux", "Windows": "win32"}[system],
                   "os_name": {"Linux": "posix", "Windows": "nt"}[system]}
    chosen = set()
    for line in lines:
        requirement = Requirement(line)
        marker = requirement.marker
        if marker is None or any(marker.evaluate({**environment, "extra": extra}) for extra in ("", *extras)):
            chosen.add(canonicalize_name(requirement.name))
    return chosen


def test_the_fixtures_are_the_locks_poetry_wrote():
    assert 'category = "dev"' in lock("1.4.2") and "category" not in lock("1.8.5") + lock("2.5.1")
    assert "groups" not in lock("1.8.5") and 'groups = ["main", "dev", "docs"]' in lock("2.5.1")
    assert ('markers = {main = "platform_system == \\"Windows\\"", dev = "sys_platform == \\"win32\\"", '
            'docs = "platform_system == \\"Windows\\""}') in lock("2.5.1")
    assert lock("2.5.1").count("[[package]]") == len(GROUPS) == 20


def test_a_poetry_2_lock_installs_what_poetry_install_only_main_does():
    lines = requirements_from_poetry_lock(lock("2.5.1"), PYPROJECT)
    assert lines == (
        'async-timeout==5.0.1 ; extra == "queue" and python_full_version < "3.11.3"',
        "blinker==1.9.0",
        "click==8.1.8",
        'colorama==0.4.6 ; platform_system == "Windows"',
        "flask==3.1.0",
        'importlib-metadata==8.7.1 ; python_version == "3.9"',
        "itsdangerous==2.2.0",
        "jinja2==3.1.6",
        "markupsafe==3.0.4",
        'redis==5.2.1 ; extra == "queue"',
        "werkzeug==3.1.9",
        'zipp==3.23.1 ; python_version == "3.9"',
    )
    assert installs(lines) == POETRY_INSTALLS
    # The main group's markers are kept: Python 3.9 gets importlib-metadata, Windows colorama.
    assert installs(lines, "3.9.18") == POETRY_INSTALLS | {"importlib-metadata", "zipp"}
    assert installs(lines, "3.11.7", "Windows") == POETRY_INSTALLS | {"colorama"}


def test_a_package_in_main_and_another_group_is_kept_one_only_in_dev_or_docs_is_not():
    names = {Requirement(line).name for line in requirements_from_poetry_lock(lock("2.5.1"), PYPROJECT)}
    assert {"click", "jinja2", "markupsafe", "colorama"} <= names  # main and docs (and dev)
    assert not names & {"pytest", "iniconfig", "pluggy", "tomli", "exceptiongroup", "typing-extensions",  # dev
                        "mkdocs",  # docs (an optional group)
                        "packaging"}  # dev and docs
    names = {Requirement(line).name for line in requirements_from_poetry_lock(lock("1.4.2"), PYPROJECT)}
    assert {"click", "jinja2", "markupsafe", "colorama", "flask"} <= names  # category "main": main and others
    assert not names & {"pytest", "iniconfig", "pluggy", "tomli", "exceptiongroup", "typing-extensions", "mkdocs",
                        "packaging"}  # category "dev": every group but main


def test_markers_keyed_by_group_take_the_main_groups_and_a_group_left_out_has_none():
    # Poetry 2 writes one string when every group has the same marker, a table when they differ, and leaves out
    # of the table a group that needs the package everywhere (its marker is "*").
    lock_21 = ('[[package]]\nname = "colorama"\nversion = "0.4.6"\noptional = false\ngroups = ["main", "dev"]\n'
               'markers = {main = "platform_system == \'Windows\'", dev = "sys_platform == \'win32\'"}\n'
               '[[package]]\nname = "tomli"\nversion = "2.5.0"\noptional = false\ngroups = ["main", "dev"]\n'
               'markers = {dev = "python_version < \'3.11\'"}\n'
               '[[package]]\nname = "exceptiongroup"\nversion = "1.3.2"\noptional = false\ngroups = ["dev"]\n'
               'markers = {dev = "python_version < \'3.11\'"}\n'
               '[[package]]\nname = "zipp"\nversion = "3.23.1"\noptional = false\ngroups = ["main", "docs"]\n'
               'markers = "python_version == \'3.9\'"\n'
               '[metadata]\nlock-version = "2.1"\n')
    assert requirements_from_poetry_lock(lock_21, "") == ("colorama==0.4.6 ; platform_system == 'Windows'",
                                                          "tomli==2.5.0",
                                                          "zipp==3.23.1 ; python_version == '3.9'")


def test_optional_packages_of_a_poetry_2_lock_are_left_out_unless_their_extra_is_asked_for():
    lines = requirements_from_poetry_lock(lock("2.5.1"), PYPROJECT)
    # Poetry 2 marks what only an extra needs with `extra == ...`: without extras (Shipyard asks for none) uv
    # skips it, as `poetry install` does. markupsafe is in an extra too but jinja2 needs it: not optional, kept.
    assert not installs(lines) & {"redis", "async-timeout"} and "markupsafe" in installs(lines)
    assert {"redis", "async-timeout"} <= installs(lines, "3.11.2", "Linux", "queue")


def test_a_category_lock_of_poetry_before_1_5_installs_the_main_category():
    lines = requirements_from_poetry_lock(lock("1.4.2"), PYPROJECT)
    assert POETRY_INSTALLS <= installs(lines)
    assert not installs(lines) & {"pytest", "iniconfig", "pluggy", "packaging", "mkdocs"}


def test_a_category_lock_leaves_out_what_only_an_extra_needs():
    lines = requirements_from_poetry_lock(lock("1.4.2"), PYPROJECT)
    assert not {Requirement(line).name for line in lines} & {"redis", "async-timeout"}


@pytest.mark.parametrize("poetry", ["1.8.5", "1.4.2"])
def test_a_lock_of_poetry_1_installs_what_poetry_install_only_main_does(poetry):
    # Poetry < 2 locks carry no markers on packages, only on the dependencies between them: which groups and
    # platforms need a package is found by walking the graph from pyproject.toml, as Poetry's installer does.
    lines = requirements_from_poetry_lock(lock(poetry), PYPROJECT)
    assert installs(lines) == POETRY_INSTALLS


def test_the_project_itself_is_installed_without_its_dependencies_so_no_group_comes_with_it(tmp_path: Path):
    """The lock's main group goes in from the converted requirements; then `uv pip install --no-deps -e .`, which
    installs the project alone: its metadata (poetry-core's) names only main and extras anyway, never a group,
    and its build backend goes into uv's isolated build environment, not the app's virtualenv."""
    plan = plan_dependencies({"pyproject.toml": PYPROJECT, "poetry.lock": lock("2.5.1")})
    assert plan == DependencyPlan("poetry.lock", requirements_from_poetry_lock(lock("2.5.1"), PYPROJECT),
                                  installs_project=True)
    app_only = PYPROJECT.replace('packages = [{include = "shop"}]', "package-mode = false")
    assert plan_dependencies({"pyproject.toml": app_only, "poetry.lock": lock("2.5.1")}).installs_project is False

    ran: list[list[str]] = []

    async def run(argv, env, cwd, log):  # the build's Runner, without running anything
        ran.append(argv)
        return 0, []

    async def log(line: str) -> None:
        pass

    inputs = tmp_path / "inputs"
    inputs.mkdir()
    venv = tmp_path / "venv"
    python = Interpreter(Version("3.11.7"), Path("/usr/bin/python3.11"))
    asyncio.run(install_dependencies(venv, tmp_path / "app", plan, {}, log, run,  # type: ignore[arg-type]
                                     inputs, python, [python]))
    generated = inputs / "requirements-from-poetry-lock.txt"
    assert [argv[1:] for argv in ran] == [
        ["pip", "install", "--python", str(venv / "bin" / "python"), "-r", str(generated)],
        ["pip", "install", "--python", str(venv / "bin" / "python"), "--no-deps", "-e", "."],
    ]
    assert generated.read_text().splitlines() == list(plan.requirements)


def lock_18(*packages: str) -> str:
    """A Poetry 1.8 lock (lock-version 2.0, no groups) of these `[[package]]` bodies."""
    return "".join(f"[[package]]\n{body.strip()}\n\n" for body in packages) + '[metadata]\nlock-version = "2.0"\n'


def project(dependencies: str, more: str = "") -> str:
    return f'[tool.poetry]\nname = "app"\nversion = "0"\n\n[tool.poetry.dependencies]\npython = "^3.9"\n{dependencies}\n{more}'


def test_a_poetry_1_8_lock_pins_another_platforms_package_under_its_marker():
    # What Poetry 1.8.5 locked for `docker = "7.1.0"`: pywin32 has no wheel for Linux; unpinned by a marker, uv
    # fails the build ("no wheels with a matching platform tag").
    lock = lock_18('name = "docker"\nversion = "7.1.0"\noptional = false\npython-versions = ">=3.8"\n'
                   '[package.dependencies]\npywin32 = {version = ">=304", markers = "sys_platform == \\"win32\\""}\n'
                   'requests = ">=2.26.0"\n',
                   'name = "pywin32"\nversion = "312"\noptional = false\npython-versions = ">=3.9"\n',
                   'name = "requests"\nversion = "2.32.5"\noptional = false\npython-versions = ">=3.9"\n')
    lines = requirements_from_poetry_lock(lock, project('docker = "7.1.0"'))
    assert lines == ("docker==7.1.0", 'pywin32==312 ; sys_platform == "win32"', "requests==2.32.5")
    assert installs(lines) == {"docker", "requests"}
    assert installs(lines, "3.11.7", "Windows") == {"docker", "requests", "pywin32"}


def test_the_markers_of_a_path_are_joined_by_and_its_alternatives_by_or_and_one_path_without_any_wins():
    lock = lock_18('name = "a"\nversion = "1"\n[package.dependencies]\n'
                   'b = {version = "*", markers = "sys_platform == \'win32\'"}\nshared = "*"\n',
                   'name = "b"\nversion = "1"\n[package.dependencies]\n'
                   'c = {version = "*", markers = "python_version < \'3.10\'"}\n',
                   'name = "c"\nversion = "1"\n[package.dependencies]\nb = "*"\n',  # a cycle: c needs b again
                   'name = "d"\nversion = "1"\n[package.dependencies]\n'
                   'c = {version = "*", markers = "os_name == \'posix\'"}\n'
                   'shared = {version = "*", markers = "os_name == \'posix\'"}\n',
                   'name = "shared"\nversion = "1"\n')
    lines = requirements_from_poetry_lock(lock, project('a = "*"\nd = "*"'))
    assert lines == ("a==1", 'b==1 ; os_name == "posix" or sys_platform == "win32"',  # a -> b, d -> c -> b
                     'c==1 ; os_name == "posix" or (python_version < "3.10" and sys_platform == "win32")', "d==1",
                     "shared==1")


def test_a_links_python_constraint_is_a_marker_and_names_are_compared_normalised():
    lock = lock_18('name = "jinja2"\nversion = "3.1.6"\n[package.dependencies]\nMarkupSafe = ">=2.0"\n',
                   'name = "markupsafe"\nversion = "3.0.2"\n', 'name = "tomli"\nversion = "2.2.1"\n',
                   'name = "typing-extensions"\nversion = "4.12.2"\n')
    lines = requirements_from_poetry_lock(lock, project(
        'Jinja2 = "^3.1"\ntomli = {version = "^2.0", python = "<3.11"}\n'
        'typing_extensions = {version = "*", python = "~3.9 || >=3.11.3", markers = "os_name == \'posix\'"}\n'
        'gone = "^1.0"'))  # not in the lock (a stale lock): left to uv
    assert lines == ("jinja2==3.1.6", "markupsafe==3.0.2", 'tomli==2.2.1 ; python_version < "3.11"',
                     ('typing-extensions==4.12.2 ; ((python_version >= "3.9" and python_version < "3.10") or '
                      'python_full_version >= "3.11.3") and os_name == "posix"'))


@pytest.mark.parametrize(("constraint", "marker"), [
    ("^3.9", 'python_version >= "3.9" and python_version < "4.0"'),
    ("~3.9.1", 'python_full_version >= "3.9.1" and python_full_version < "3.10.0"'),
    (">=3.8,<3.11", 'python_version >= "3.8" and python_version < "3.11"'),
    (">= 3.8 <3.11", 'python_version >= "3.8" and python_version < "3.11"'),
    ("3.9.*", 'python_version == "3.9.*"'),
    ("*", ""),
])
def test_a_python_constraint_is_written_as_poetry_writes_its_marker(constraint, marker):
    assert python_marker(constraint) == marker


def test_one_name_locked_at_two_versions_is_chosen_by_each_links_constraint():
    lock = lock_18('name = "numpy"\nversion = "1.24.4"\n', 'name = "numpy"\nversion = "2.0.2"\n')
    lines = requirements_from_poetry_lock(lock, project(
        'numpy = [{version = "^1.24", python = "<3.10"}, {version = "2.0.2", python = ">=3.10"}]'))
    assert lines == ('numpy==1.24.4 ; python_version < "3.10"', 'numpy==2.0.2 ; python_version >= "3.10"')


def test_an_extra_a_link_asks_for_brings_what_the_extra_lists_with_the_extras_markers():
    # As Poetry 1.8.5 locks requests: the optional link's marker names the extra, the extra's requirement does not.
    requests = ('name = "requests"\nversion = "2.32.5"\n[package.dependencies]\n'
                'PySocks = {version = ">=1.5.6,<1.5.7 || >1.5.7", optional = true, markers = "extra == \\"socks\\""}\n'
                'brotli = {version = "*", optional = true, markers = "extra == \\"all\\""}\n'
                '[package.extras]\nsocks = ["PySocks (>=1.5.6,!=1.5.7)"]\n'
                'All = ["requests[socks]", "brotli ; platform_python_implementation == \\"CPython\\""]\n')
    packages = (requests, 'name = "pysocks"\nversion = "1.7.1"\n', 'name = "brotli"\nversion = "1.1.0"\n')
    assert requirements_from_poetry_lock(lock_18(*packages), project('requests = "*"')) == ("requests==2.32.5",)
    assert requirements_from_poetry_lock(lock_18(*packages), project(
        'requests = {version = "*", extras = ["socks"]}')) == ("pysocks==1.7.1", "requests==2.32.5")
    assert requirements_from_poetry_lock(lock_18(*packages), project(
        'requests = {version = "*", extras = ["all"], markers = "os_name == \'posix\'"}')) == (
        'brotli==1.1.0 ; os_name == "posix" and platform_python_implementation == "CPython"',
        'pysocks==1.7.1 ; os_name == "posix"', 'requests==2.32.5 ; os_name == "posix"')


def test_the_roots_extras_and_pep_621_optional_dependencies_come_only_when_asked_for():
    packages = [tomllib.loads(lock_18('name = "flask"\nversion = "3.1.0"\n', 'name = "redis"\nversion = "5.2.1"\n',
                                      'name = "rich"\nversion = "13.9.4"\n'))["package"]][0]
    pep621 = tomllib.loads('[project]\nname = "app"\ndependencies = ["Flask>=3"]\n'
                           '[project.optional-dependencies]\ncli = ["rich ; os_name == \'posix\'"]\n'
                           '[tool.poetry.dependencies]\nredis = {version = "*", optional = true}\n'
                           '[tool.poetry.extras]\nqueue = ["redis"]\n')
    assert main_requirements(packages, pep621) == ("flask==3.1.0",)
    assert main_requirements(packages, pep621, ["queue", "CLI"]) == (
        "flask==3.1.0", "redis==5.2.1", 'rich==13.9.4 ; os_name == "posix"')


def test_a_lock_without_groups_cannot_be_read_without_its_pyproject():
    with pytest.raises(BuildError) as info:
        requirements_from_poetry_lock(lock("1.8.5"), "")
    assert "pyproject.toml" in info.value.message


def test_a_condition_with_too_many_paths_is_widened_to_what_they_all_share():
    paths = [frozenset({"os_name == 'posix'", f"python_version == '3.{minor}'"}) for minor in range(MAX_TERMS + 1)]
    assert either(frozenset(paths[:-1]), frozenset(paths[-1:])) == frozenset({frozenset({"os_name == 'posix'"})})
    assert either(frozenset(paths), ALWAYS) == ALWAYS  # a path without markers absorbs the others
