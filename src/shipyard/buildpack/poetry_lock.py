"""A poetry.lock's main group as pinned requirements, found as `poetry install --only main` finds it (pure functions).

Poetry 2 writes on each package its groups and, per group, the markers under which it is needed. Earlier locks do
not: Poetry 1.5-1.8 (lock-version 2.0) write no group at all, Poetry < 1.5 only a `category` that lumps every
non-main group into "dev" and counts extras-only packages as main, and both put markers only on the links between
packages. For those the main group is found as Poetry's installer finds it: by walking the links from the root
project's main dependencies, carrying each link's markers.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from packaging.markers import InvalidMarker, Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

Package = Mapping[str, Any]  # one [[package]] table of the lock
Term = frozenset[str]  # markers that must all hold: the links of one path from the root
Condition = frozenset[Term]  # where a package is needed: wherever any of its terms holds
ALWAYS: Condition = frozenset({frozenset()})
NEVER: Condition = frozenset()
# Paths multiply in a dense graph; past this many a condition is widened to what all its paths share (see `either`).
MAX_TERMS = 16
_CLAUSE = re.compile(r"\s*(\^|~=|~|===|==|!=|<=|>=|<|>|=)?\s*([^\s,]+)")


@dataclass(frozen=True)
class Link:
    """A dependency of the root project or of a locked package on a package of the lock."""
    name: str  # normalised (PEP 503): the lock, pyproject.toml and metadata spell names differently
    extras: frozenset[str] = frozenset()  # normalised too (PEP 685)
    markers: Term = frozenset()
    versions: tuple[SpecifierSet, ...] = ()  # any of these; none: any version
    optional: bool = False  # only for an extra of the package that declares it


def grouped_requirements(packages: Iterable[Package]) -> tuple[str, ...]:
    """A lock whose packages say their groups (Poetry 2) or category (Poetry < 1.5): the main ones, lock order."""
    lines = []
    for package in packages:
        groups = package.get("groups")
        category = package.get("category", "main")
        if (groups is not None and "main" not in groups) or (groups is None and category != "main"):
            continue
        line = f"{package['name']}=={package['version']}"
        if markers := package.get("markers"):
            # A table when groups need the package under different markers; a group left out of it needs it always.
            marker = markers if isinstance(markers, str) else markers.get("main")
            if marker:
                line += f" ; {marker}"
        lines.append(line)
    return tuple(lines)


def main_requirements(packages: Sequence[Package], project: Mapping[str, Any],
                      extras: Collection[str] = ()) -> tuple[str, ...]:
    """The packages that the root project's main dependencies (and `extras` of its own) need, with the markers
    under which they need them, sorted."""
    conditions = walk(packages, root_links(project, extras))
    lines = []
    for index, condition in sorted(conditions.items(), key=lambda item: package_order(packages[item[0]])):
        package = packages[index]
        marker = marker_text(condition)
        lines.append(f"{package['name']}=={package['version']}" + (f" ; {marker}" if marker else ""))
    return tuple(lines)


def package_order(package: Package) -> tuple[str, Version | str]:
    try:
        return canonicalize_name(package["name"]), Version(str(package["version"]))
    except InvalidVersion:
        return canonicalize_name(package["name"]), str(package["version"])


def root_links(project: Mapping[str, Any], extras: Collection[str] = ()) -> list[Link]:
    """The main group of pyproject.toml: Poetry's own table and PEP 621's (Poetry 2 reads both), the optional
    dependencies only for the extras asked for."""
    poetry = project.get("tool", {}).get("poetry", {})
    pep621 = project.get("project", {})
    wanted = {canonicalize_name(extra) for extra in extras}
    links = [link for name, entry in poetry.get("dependencies", {}).items() if canonicalize_name(name) != "python"
             for link in entry_links(name, entry)]
    links += filter(None, map(requirement_link, pep621.get("dependencies", [])))
    links += [link for extra, texts in pep621.get("optional-dependencies", {}).items()
              if canonicalize_name(extra) in wanted for link in filter(None, map(requirement_link, texts))]
    # Poetry's extras name which of its optional dependencies each one turns on.
    turned_on = {link.name for extra, texts in poetry.get("extras", {}).items() if canonicalize_name(extra) in wanted
                 for link in filter(None, map(requirement_link, texts))}
    return [replace(link, optional=False) if link.name in turned_on else link for link in links]


def entry_links(name: str, entry: Any) -> list[Link]:
    """A dependency as pyproject.toml or the lock writes it: a version, a table, or a list of tables (one per
    Python or platform)."""
    if isinstance(entry, list):
        return [link for alternative in entry for link in entry_links(name, alternative)]
    if not isinstance(entry, Mapping):
        return [Link(canonicalize_name(name), versions=poetry_constraint(str(entry)))]
    texts = (entry.get("markers"), python_marker(str(entry.get("python", "*"))))
    markers = frozenset({normal_marker(text) for text in texts if text} - {""})
    return [Link(canonicalize_name(name), frozenset(canonicalize_name(e) for e in entry.get("extras", [])),
                 markers, poetry_constraint(str(entry.get("version", "*"))),
                 bool(entry.get("optional", False)))]


def requirement_link(text: str) -> Link | None:
    """A PEP 508 requirement (PEP 621's tables, a lock's `[package.extras]`, which Poetry writes `name (>=1.0)`)."""
    try:
        requirement = Requirement(text)
    except InvalidRequirement:
        return None
    marker = normal_marker(str(requirement.marker)) if requirement.marker else ""
    return Link(canonicalize_name(requirement.name), frozenset(canonicalize_name(e) for e in requirement.extras),
                frozenset({marker} - {""}), (requirement.specifier,))


def normal_marker(text: str) -> str:
    """One spelling per marker, so that two paths through the same links are one term. An unreadable marker is
    dropped: the package is installed everywhere rather than missed."""
    try:
        return str(Marker(text))
    except InvalidMarker:
        return ""


def poetry_constraint(text: str) -> tuple[SpecifierSet, ...]:
    """Poetry's version constraint (`^1.2`, `~1.2`, `>=1 <2 || 3.*`) as PEP 440 alternatives; none for any."""
    alternatives = []
    for alternative in text.split("||"):
        specifiers = []
        for operator, version in _CLAUSE.findall(alternative):
            try:
                specifiers += pep440_clause(operator, version)
            except InvalidVersion:
                return ()
        if not specifiers:
            return ()
        try:
            alternatives.append(SpecifierSet(",".join(specifiers)))
        except InvalidSpecifier:
            return ()
    return tuple(alternatives)


def pep440_clause(operator: str, version: str) -> list[str]:
    if version == "*":
        return []
    if operator in ("^", "~"):
        release = Version(version).release
        # ^ keeps the leftmost non-zero part (^0.2.3: <0.3), ~ the minor version (~1.2.3: <1.3, ~1: <2).
        if operator == "^":
            keep = 0 if release[0] or len(release) == 1 else 1 if len(release) == 2 or release[1] else 2
        else:
            keep = 0 if len(release) == 1 else 1
        # Written to the constraint's precision, as Poetry does: ^3.9 is <4.0, so its marker is on python_version.
        upper = ".".join(map(str, (*release[:keep], release[keep] + 1, *[0] * (len(release) - keep - 1))))
        return [f">={version}", f"<{upper}"]
    return [f"{operator if operator not in ('', '=') else '=='}{version}"]


def python_marker(constraint: str) -> str:
    """A link's `python = "..."` as a marker: python_version for x.y, python_full_version for x.y.z, as Poetry
    writes them."""
    alternatives = poetry_constraint(constraint)
    texts = []
    for specifiers in alternatives:
        lower_first = sorted(specifiers, key=lambda s: (s.operator not in (">", ">="), str(s)))
        clauses = [f'{"python_full_version" if s.version.removesuffix(".*").count(".") >= 2 else "python_version"} '
                   f'{s.operator} "{s.version}"' for s in lower_first]
        texts.append(" and ".join(clauses))
    return " or ".join(f"({text})" if len(texts) > 1 else text for text in texts)


def walk(packages: Sequence[Package], roots: Iterable[Link]) -> dict[int, Condition]:
    """Where each locked package (by its place in the lock) is needed, from the root's links. A node is a package
    with one of its extras ("" for the package itself); a node is walked again whenever its condition widens, which
    ends, cycles included, as conditions only widen and are made of the lock's finitely many markers."""
    index: dict[str, list[int]] = {}
    for place, package in enumerate(packages):
        index.setdefault(canonicalize_name(package["name"]), []).append(place)
    conditions: dict[tuple[int, str], Condition] = {}
    pending = [((-1, ""), link, ALWAYS) for link in roots if not link.optional]
    while pending:
        source, link, condition = pending.pop()
        own = [source[0]] if source[0] >= 0 and link.name == canonicalize_name(packages[source[0]]["name"]) else []
        for target in own or targets(link, index.get(link.name, []), packages):
            for node in [(target, ""), *((target, extra) for extra in sorted(link.extras))]:
                widened = either(conditions.get(node, NEVER), both(condition, link.markers))
                if widened != conditions.get(node):
                    conditions[node] = widened
                    pending += [(node, out, widened) for out in node_links(packages[node[0]], node[1])]
    return {place: condition for (place, extra), condition in conditions.items() if not extra}


def targets(link: Link, places: list[int], packages: Sequence[Package]) -> list[int]:
    """The locked packages a link means. Poetry locks one name at several versions when a dependency has one
    constraint per Python or platform: the link's versions choose. A name the lock lacks means none (a stale lock;
    uv reports what is really missing)."""
    if len(places) <= 1 or not link.versions:
        return places
    chosen = [place for place in places if satisfies(str(packages[place]["version"]), link.versions)]
    return chosen or places


def satisfies(version: str, alternatives: tuple[SpecifierSet, ...]) -> bool:
    try:
        return any(specifiers.contains(Version(version), prereleases=True) for specifiers in alternatives)
    except InvalidVersion:
        return True


def node_links(package: Package, extra: str) -> list[Link]:
    """What a package needs: its required dependencies, or, for one of its extras, the requirements that extra
    lists (they may name the package itself with other extras)."""
    if not extra:
        return [link for name, entry in package.get("dependencies", {}).items()
                for link in entry_links(name, entry) if not link.optional]
    texts = next((texts for name, texts in package.get("extras", {}).items() if canonicalize_name(name) == extra), [])
    # The optional dependency's own link carries `extra == "..."` markers: the extra's requirement does not.
    return list(filter(None, map(requirement_link, texts)))


def both(condition: Condition, term: Term) -> Condition:
    return frozenset(path | term for path in condition)


def either(first: Condition, second: Condition) -> Condition:
    terms = first | second
    kept = frozenset(term for term in terms if not any(other < term for other in terms))
    if len(kept) > MAX_TERMS:
        # What every path shares holds wherever the package is needed: needed there alone, it is at worst
        # installed somewhere it is not used.
        return frozenset({frozenset.intersection(*kept)})
    return kept


def marker_text(condition: Condition) -> str:
    """A condition as one marker, "" when a path needs no marker."""
    if frozenset() in condition:
        return ""
    terms = sorted(" and ".join(f"({m})" if " or " in m else m for m in sorted(term)) for term in condition)
    return str(Marker(" or ".join(f"({t})" if len(terms) > 1 and " and " in t else t for t in terms)))
