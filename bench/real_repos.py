"""Real repositories: first `git push` of public apps written for other platforms, as a user would do it.

Each repository below is a public Flask, Django or FastAPI app written for Heroku, Render, Railway, Koyeb
or DigitalOcean App Platform, none of them ours. For each one the script does what a user moving it to
Shipyard does, once: `shipyard apps create`, the PostgreSQL add-on if the app needs a database, the config
its own README (or the platform file it points to: app.json, render.yaml, railway.json, .do/app.yaml)
asks a user to set, the build/start/release command settings from the same place, then one `git push` of
its default branch and a GET through the edge. Nothing is retried and nothing in the repository is
changed: the figure is "live on the first push".

The code is never copied into this repository. It is read at run time from local git mirrors, one per
repository, at <mirror root>/<owner>+<name>/repo (a bare git directory, or a clone with a work tree);
the mirror root is /work/.mirror unless --mirror or $SHIPYARD_REAL_REPOS_MIRROR says otherwise. Make one
with `git clone --mirror https://github.com/<owner>/<name> <root>/<owner>+<name>/repo`. Each entry pins
the commit that was tested; a mirror without it is used at its HEAD and the table says so.

Starts a real `shipyard up` in a temporary directory (tests/e2e/harness.Shipyard, like bench/deploy.py)
and stops it and every process it started at the end, unless --keep. Push logs go to a directory under
/tmp (printed at the end); nothing is written into the repository.

Usage: python bench/real_repos.py [--only NAME ...] [--keep] [--markdown] [--mirror DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.harness import Shipyard

# Placeholders in config values and commands, filled per app:
#   {host}   the app's hostname on this platform (<app>.localhost), what a README calls "your app's domain"
#   {url}    the app's external URL
#   {secret} a fresh random secret (what Render's `generateValue` / app.json's `generator: secret` make)


@dataclass(frozen=True)
class Repo:
    slug: str                    # owner/name on GitHub
    commit: str                  # the commit tested
    app: str                     # Shipyard app name (≤ 30 chars, [a-z0-9-])
    framework: str               # Flask | Django | FastAPI
    deps: str                    # how it declares dependencies
    written_for: str             # the platform its README deploys to
    why: str                     # why it is in the list
    source: str                  # where the settings below come from
    postgres: bool = False       # needs the database add-on
    config: dict[str, str] = field(default_factory=dict)
    start: str | None = None     # start command setting (None: Shipyard detects it)
    build: str | None = None     # build command setting, run after the install
    release: str | None = None   # release / pre-deploy command
    path: str = "/"              # GET through the edge: "live" when it answers `status` (and contains `text`)
    status: int = 200
    text: str | None = None
    db_path: str | None = None   # a page that reads the database: checked and reported, not part of "live"
    skipped: str = ""            # settings its README gives that are deliberately not applied, and why


REPOS: list[Repo] = [
    Repo("heroku/python-getting-started", "f7c8d9929a782e90bc0bb9320f2cb43a3d62958d", "heroku-getting-started",
         "Django", "pip (requirements.txt), .python-version 3.14", "Heroku",
         "Heroku's own Python tutorial app: the reference for `git push heroku main`; gunicorn.conf.py binds [::]",
         "README (`heroku create`, `git push heroku main`) + app.json env",
         config={"DJANGO_SECRET_KEY": "{secret}"},
         text="Getting Started"),
    Repo("render-examples/flask-hello-world", "facfc73c44b35d00bb1f72e8986f0ea47cab0755", "render-flask-hello",
         "Flask", "pip (requirements.txt)", "Render",
         "Render's Flask quick start (render.com/docs/deploy-flask): the smallest real app",
         "docs/deploy-flask the README points to: start command",
         start="gunicorn app:app", text="Hello, World!",
         skipped="build command `pip install -r requirements.txt` (the install itself; Shipyard installs)"),
    Repo("render-examples/django", "fbc60fcb44eebd63cfd45566e6973183e6f75aa4", "render-django",
         "Django", "pip (requirements.txt)", "Render",
         "Render's Django guide: build.sh (pip install, collectstatic, migrate), ASGI under gunicorn+uvicorn, "
         "settings keyed on Render's own RENDER / RENDER_EXTERNAL_HOSTNAME",
         "render.yaml + docs/deploy-django: database, SECRET_KEY, WEB_CONCURRENCY, build and start commands",
         postgres=True, config={"SECRET_KEY": "{secret}", "WEB_CONCURRENCY": "4"},
         build="./build.sh", start="python -m gunicorn mysite.asgi:application -k uvicorn.workers.UvicornWorker"),
    Repo("render-examples/fastapi", "f829276c68503f7afae195c3e3f778f085242cb0", "render-fastapi",
         "FastAPI", "pip (requirements.txt, `fastapi[all]` unpinned)", "Render",
         "Render's FastAPI template: uvicorn started directly on $PORT",
         "README step 5: start command",
         start="uvicorn main:app --host 0.0.0.0 --port $PORT", text="Hello World",
         skipped="build command `pip install -r requirements.txt` (the install itself)"),
    Repo("digitalocean/sample-flask", "7d0906df0e7189c96cfc7f5fabc4d47bbacf5617", "do-sample-flask",
         "Flask", "pip (requirements.txt)", "DigitalOcean App Platform",
         "DigitalOcean's Flask sample: Procfile with a gunicorn config file that binds 0.0.0.0:8080",
         "README: nothing to set",
         text="Flask"),
    Repo("digitalocean/sample-django", "2a3a56b8e62e86db9d2b4e64b44a596f31b128af", "do-sample-django",
         "Django", "pip (requirements.txt, Django 4.0, psycopg2-binary 2.9.3)", "DigitalOcean App Platform",
         "DigitalOcean's Django sample: DATABASE_URL required at import, DJANGO_ALLOWED_HOSTS, "
         "`--worker-tmp-dir /dev/shm`, a pre-deploy migrate job",
         "README steps (env vars, run command, database) + .do/app.yaml (PRE_DEPLOY job `migrate`)",
         postgres=True, config={"DJANGO_ALLOWED_HOSTS": "{host}"},
         start="gunicorn --worker-tmp-dir /dev/shm mysite.wsgi", release="python manage.py migrate",
         db_path="/polls/",
         skipped="DEBUG (optional); DISABLE_COLLECTSTATIC (app.yaml: for its separate static-site component)"),
    Repo("koyeb/example-flask", "1d838c11f987aba9c280b46fc2b90b2a31f05631", "koyeb-flask",
         "Flask", "pip (requirements.txt)", "Koyeb",
         "Koyeb's Flask example: README overrides the run command with plain `gunicorn app:app` (relies on $PORT)",
         "README step 3: run command",
         start="gunicorn app:app"),
    Repo("koyeb/example-fastapi", "99c6c951e72793d52b2154dc4caaea911ca6a278", "koyeb-fastapi",
         "FastAPI", "pip (requirements.txt), .python-version 3.12", "Koyeb",
         "Koyeb's FastAPI example: Procfile with ${PORT:-8000}, uvloop/httptools pinned",
         "README: nothing to set",
         text="Hello"),
    Repo("koyeb/example-django", "467addd0fc27aa7fb8e5ed16d7f98186751b0f65", "koyeb-django",
         "Django", "pip (requirements.txt)", "Koyeb",
         "Koyeb's Django example: DJANGO_ALLOWED_HOSTS from the environment, whitenoise manifest storage, "
         "only /admin/ routed",
         "README step 4: DJANGO_ALLOWED_HOSTS",
         config={"DJANGO_ALLOWED_HOSTS": "{host}"}, path="/admin/login/",
         skipped="PORT=8000 (Koyeb's port mapping; Shipyard sets PORT)"),
    Repo("koyeb/example-django-rest-framework-url-shortener", "d4e3d1747bfc7cc3c8bbb153a122669885b2d65e",
         "koyeb-drf-shortener",
         "Django", "pip (requirements.txt, psycopg2 from source), runtime.txt python-3.11.4", "Koyeb",
         "A Koyeb tutorial app with a database: DRF, psycopg2 built from source, an exact-patch runtime.txt",
         "README step 4 + Deploy button: DATABASE_URL, DISABLE_COLLECTSTATIC, DJANGO_ALLOWED_HOSTS, run command",
         postgres=True, config={"DISABLE_COLLECTSTATIC": "1", "DJANGO_ALLOWED_HOSTS": "{host}"},
         start="gunicorn urlshortener.wsgi",
         skipped="`?sslmode=require` on DATABASE_URL (the add-on's PGSSLMODE=verify-full is stricter); "
                 "README text says `url_project.wsgi`, which does not exist: the Deploy button's command is used"),
    Repo("railwayapp-templates/django", "9c630a47d4a2988c7b7b596574ae01f95f5ee3a9", "railway-django",
         "Django", "pip (requirements.txt, psycopg2 from source), runtime.txt python-3.11", "Railway",
         "Railway's Django template: reads PGHOST/PGPORT/PGUSER/PGPASSWORD/PGDATABASE, migrate+collectstatic "
         "in the start command",
         "railway.json (read by Railway on every deploy): start command; the template adds Postgres",
         postgres=True,
         start="python manage.py migrate && python manage.py collectstatic --noinput && gunicorn mysite.wsgi",
         path="/admin/login/"),
    Repo("railwayapp-templates/flask", "4c195389954ae2ee27f0c1b249a11e91e5a4e398", "railway-flask",
         "Flask", "pip (requirements.txt: Flask 1.1.2, Jinja2 2.11, MarkupSafe 1.1.1)", "Railway",
         "Railway's Flask template: old pinned Flask 1.x stack, app in main.py",
         "railway.json: start command",
         start="gunicorn main:app", text="Choo Choo"),
    Repo("railwayapp-starters/fastapi", "82b897223c19490440f71d4cd0889aa4d09f8322", "railway-fastapi",
         "FastAPI", "pip (requirements.txt: fastapi 0.100, hypercorn)", "Railway",
         "Railway's FastAPI starter: hypercorn (not uvicorn) bound to [::]:$PORT",
         "railway.json: start command",
         start='hypercorn main:app --bind "[::]:$PORT"', text="Hello, World!"),
    Repo("bennylope/python-deployments-hello-world", "e5d2dcdc1b6961ba31991b0088f90515c8191b38",
         "paas-hello-fastapi",
         "FastAPI", "poetry (poetry.lock + exported requirements.txt), runtime.txt python-3.11.2",
         "Heroku, Render, Railway, Fly, Platform.sh",
         "A community comparison repo deployed to five PaaS as is: poetry.lock, Procfile with ${PORT:-5000}",
         "README (Heroku: create the app, git push): nothing to set",
         text="Hello world!"),
    Repo("Robinwurst/python-project-83", "c1c885f5ab8cba81969aa828b5d87502a8555f26", "hexlet-analyzer-a",
         "Flask", "uv (pyproject.toml, no lock; requires-python >=3.13)", "Render",
         "A student project of Hexlet's course (hundreds of forks deployed to Render the same way): build.sh "
         "downloads uv and loads database.sql with psql $DATABASE_URL",
         "README: SECRET_KEY, DATABASE_URL; the course's Render settings `make build` / `make render-start`",
         postgres=True, config={"SECRET_KEY": "{secret}"},
         build="make build", start="make render-start", db_path="/urls"),
    Repo("AlishaEvergreen/python-project-83", "bbedde61015f4f3088e65db7bea4efad308232af", "hexlet-analyzer-b",
         "Flask", "uv (uv.lock)", "Render",
         "The same course project with a uv.lock: build.sh downloads uv, psql loads the schema at build time",
         "README: DATABASE_URL, SECRET_KEY; Makefile's Render targets `make build` / `make render-start`",
         postgres=True, config={"SECRET_KEY": "{secret}"},
         build="make build", start="make render-start", db_path="/urls"),
    Repo("evg671ZXC/python-project-52", "fc5c8f622dea93ed42f3bff2c7b16aee36b3b32d", "hexlet-tasks-poetry",
         "Django", "poetry (poetry.lock)", "Render",
         "Hexlet's Django task manager with Poetry (no requirements.txt), dj-database-url, rollbar middleware",
         ".env.example: SECRET_KEY, DATABASE_URL (README gives no Render settings)",
         postgres=True, config={"SECRET_KEY": "{secret}"}, db_path="/users/",
         skipped="DEBUG, ROLLBAR_ACCESS_TOKEN (optional)"),
    Repo("SergeyAnuf/python-project-52", "09cd1c8af0c38a62ca235724690f835a5e359aea", "hexlet-tasks-uv",
         "Django", "uv (uv.lock)", "Render",
         "Hexlet's Django task manager with uv and `uv sync --frozen` in Render's build command; ALLOWED_HOSTS "
         "gets the host from Render's RENDER_EXTERNAL_HOSTNAME",
         "README 'Команды на render.com': build and start commands",
         build="uv sync --frozen && uv cache prune --ci && python manage.py collectstatic --noinput",
         start="make render-start",
         skipped="README's start command `gunicorn --bind 0.0.0.0:$(PORT) …` is the Makefile target's text "
                 "(`$(PORT)` is make syntax): its target `make render-start` is used"),
]


def mirror_dir(root: Path, slug: str) -> Path | None:
    repo = root / slug.replace("/", "+") / "repo"
    for candidate in (repo / ".git", repo):
        if (candidate / "HEAD").is_file() and (candidate / "objects").is_dir():
            return candidate
    return None


@dataclass
class Outcome:
    repo: Repo
    live: bool = False
    seconds: float | None = None
    reason: str = ""
    db: str = ""
    settings: list[str] = field(default_factory=list)
    commit_note: str = ""
    log: Path | None = None


def fill(template: str, values: dict[str, str]) -> str:
    return re.sub(r"\{(host|url|secret)\}", lambda m: values[m.group(1)], template)


def first_error(push_output: str) -> str:
    """The first `remote: !` line of a push, else git's own last error line."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).rstrip() for line in push_output.splitlines()]
    for line in lines:
        text = line.removeprefix("remote:").strip()
        if text.startswith("!"):
            text = text.lstrip("!").strip()
            if text:
                return text
    errors = [line for line in lines if line.startswith(("error:", "fatal:"))]
    return (errors or [line for line in lines if line.strip()] or ["(no output)"])[-1]


def supports(shipyard: Shipyard, option: str) -> bool:
    return option in shipyard.cli("apps", "set", "--help", check=False).text


def check_page(shipyard: Shipyard, repo: Repo, path: str, status: int, text: str | None) -> tuple[bool, str]:
    try:
        response = shipyard.get(repo.app, path, timeout=30)
    except httpx.HTTPError as exc:
        return False, f"GET {path}: {type(exc).__name__}: {exc}"
    if response.status_code != status:
        return False, f"GET {path} answered {response.status_code} (expected {status})"
    if text is not None and text not in response.text:
        return False, f"GET {path} answered {status} without {text!r}"
    return True, ""


def deploy(shipyard: Shipyard, repo: Repo, mirror: Path, logs: Path, release_option: bool) -> Outcome:
    outcome = Outcome(repo)
    host = f"{repo.app}.localhost"
    values = {"host": host, "url": f"http://{host}:{shipyard.edge_port}", "secret": secrets.token_urlsafe(50)}
    log = logs / f"{repo.app}.log"
    outcome.log = log
    with log.open("w") as out:
        def step(result_text: str, title: str) -> None:
            out.write(f"$ {title}\n{result_text}\n")
            out.flush()

        work = shipyard.root / "work" / repo.app
        if work.exists():
            shutil.rmtree(work)
        done = subprocess.run(["git", "clone", "-q", "--no-checkout", str(mirror), str(work)], env=shipyard.env,
                              capture_output=True, text=True, check=False)
        step(done.stdout + done.stderr, f"git clone {mirror}")
        if done.returncode != 0:
            outcome.reason = f"clone failed: {first_error(done.stderr)}"
            return outcome
        has_commit = shipyard.git(work, "cat-file", "-e", f"{repo.commit}^{{commit}}", check=False).code == 0
        target = repo.commit if has_commit else "HEAD"
        if not has_commit:
            head = shipyard.git(work, "rev-parse", "HEAD").out.strip()
            outcome.commit_note = f"pinned {repo.commit[:7]} not in the mirror: HEAD {head[:7]} used"
        shipyard.git(work, "checkout", "-q", "--detach", target)

        result = shipyard.cli("apps", "create", repo.app, check=False)
        step(result.text, f"shipyard apps create {repo.app}")
        if result.code != 0:
            outcome.reason = f"apps create failed: {result.text.strip().splitlines()[-1]}"
            return outcome
        if repo.postgres:
            result = shipyard.cli("addons", "create", repo.app, "postgres", check=False)
            step(result.text, f"shipyard addons create {repo.app} postgres")
            if result.code != 0:
                outcome.reason = f"addons create failed: {result.text.strip().splitlines()[-1]}"
                return outcome
            outcome.settings.append("postgres")
        if repo.config:
            pairs = [f"{key}={fill(value, values)}" for key, value in repo.config.items()]
            result = shipyard.cli("config", "set", repo.app, *pairs, check=False)
            step(result.text, f"shipyard config set {repo.app} {' '.join(repo.config)}")
            if result.code != 0:
                outcome.reason = f"config set failed: {result.text.strip().splitlines()[-1]}"
                return outcome
            outcome.settings.append(", ".join(repo.config))
        options: list[str] = []
        if repo.start:
            options += ["--start-command", fill(repo.start, values)]
            outcome.settings.append("start")
        if repo.build:
            options += ["--build-command", fill(repo.build, values)]
            outcome.settings.append("build")
        if repo.release:
            if release_option:
                options += ["--release-command", fill(repo.release, values)]
                outcome.settings.append("release")
            else:
                outcome.settings.append("release (no setting)")
        if options:
            result = shipyard.cli("apps", "set", repo.app, *options, check=False)
            step(result.text, f"shipyard apps set {repo.app} {' '.join(options)}")
            if result.code != 0:
                outcome.reason = f"apps set failed: {result.text.strip().splitlines()[-1]}"
                return outcome

        shipyard.git(work, "remote", "add", "shipyard", shipyard.git_url(repo.app))
        started = time.perf_counter()
        try:
            pushed = shipyard.git(work, "push", "shipyard", "HEAD:refs/heads/main", check=False, timeout=900)
        except subprocess.TimeoutExpired:
            outcome.seconds = time.perf_counter() - started
            outcome.reason = "git push did not return within 900 s"
            return outcome
        outcome.seconds = time.perf_counter() - started
        step(pushed.text, "git push shipyard HEAD:main")
        if pushed.code != 0:
            outcome.reason = first_error(pushed.text)
            return outcome
        outcome.live, outcome.reason = check_page(shipyard, repo, repo.path, repo.status, repo.text)
        if repo.db_path:
            ok, why = check_page(shipyard, repo, repo.db_path, 200, None)
            outcome.db = "ok" if ok else why
        step(f"live={outcome.live} {outcome.reason} db={outcome.db}", "GET through the edge")
    return outcome


def shorten(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def print_table(outcomes: list[Outcome], markdown: bool) -> None:
    headers = ["repo", "framework / deps", "config set", "result", "push s", "failure reason"]
    rows = []
    for o in outcomes:
        result = "live" if o.live else "NOT live"
        if o.live and o.db:
            result += ", db ok" if o.db == "ok" else ", db page failed"
        reason = o.reason if not o.live else ("" if o.db in ("", "ok") else o.db)
        if o.commit_note:
            reason = f"{reason} [{o.commit_note}]".strip()
        rows.append([o.repo.slug, f"{o.repo.framework} / {o.repo.deps.split(' ')[0]}",
                     "; ".join(o.settings) or "—", result,
                     f"{o.seconds:.1f}" if o.seconds is not None else "—", reason])
    if markdown:
        print("| " + " | ".join(headers) + " |")
        print("|" + "|".join("---" for _ in headers) + "|")
        for row in rows:
            print("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
        return
    limits = [50, 18, 42, 20, 7, 110]
    cells = [[shorten(c, w) for c, w in zip(row, limits)] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
    for r in cells:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", action="append", default=[],
                        help="a repo (owner/name, name or app name); repeat for several")
    parser.add_argument("--keep", action="store_true", help="leave the platform and apps running for debugging")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--mirror", type=Path,
                        default=Path(os.environ.get("SHIPYARD_REAL_REPOS_MIRROR", "/work/.mirror")),
                        help="root of the git mirrors: <root>/<owner>+<name>/repo")
    args = parser.parse_args()

    selected = REPOS
    if args.only:
        wanted = set(args.only)
        selected = [r for r in REPOS if wanted & {r.slug, r.slug.split("/")[1], r.app}]
        unknown = wanted - {k for r in selected for k in (r.slug, r.slug.split("/")[1], r.app)}
        if unknown:
            print(f"Unknown --only {', '.join(sorted(unknown))}; known apps: {', '.join(r.app for r in REPOS)}",
                  file=sys.stderr)
            return 2
    mirrors = {r.slug: mirror_dir(args.mirror, r.slug) for r in selected}
    missing = [slug for slug, path in mirrors.items() if path is None]
    if missing:
        print(f"No git mirror for {len(missing)} repositories under {args.mirror}:", file=sys.stderr)
        for slug in missing:
            print(f"  git clone --mirror https://github.com/{slug} {args.mirror / slug.replace('/', '+') / 'repo'}",
                  file=sys.stderr)
        print("Make them (or point --mirror at a directory that has them), or leave them out with --only.",
              file=sys.stderr)
        return 2

    root = Path(tempfile.mkdtemp(prefix="shipyard-real-repos-"))
    logs = Path(tempfile.mkdtemp(prefix="shipyard-real-repos-logs-"))
    shipyard = Shipyard(root)
    # The harness spreads platforms over uid bases up to ~4.0e9; gunicorn < 24 masks the worker's gid to 31
    # bits (`gid & 0x7FFFFFFF`) and dies on setgid() above 2**31, which real apps pin (20.x–23.x). Keep this
    # platform's uids and gids below 2**31, as the default base (200000) does, still one range per API port.
    shipyard.env["SHIPYARD_UID_BASE"] = str(1_000_000 + (shipyard.api_port % 10_000) * 200_000)
    outcomes: list[Outcome] = []
    shipyard.start(timeout=60)
    try:
        release_option = supports(shipyard, "--release-command")
        for repo in selected:
            print(f"-----> {repo.slug} as {repo.app}", flush=True)
            try:
                outcome = deploy(shipyard, repo, mirrors[repo.slug], logs, release_option)  # type: ignore[arg-type]
            except Exception as exc:  # noqa: BLE001 (one repo's surprise must not hide the others' results)
                outcome = Outcome(repo, reason=f"script error: {type(exc).__name__}: {exc}")
            outcomes.append(outcome)
            print(f"       {'live' if outcome.live else 'NOT live'}"
                  f"{f' in {outcome.seconds:.1f} s' if outcome.seconds is not None else ''}"
                  f"{f': {outcome.reason}' if outcome.reason else ''}", flush=True)
            if not args.keep:
                shipyard.cli("apps", "destroy", repo.app, "--confirm", repo.app, check=False)
    finally:
        if args.keep:
            print(f"\nKept running (--keep): shipyard up pid {shipyard.proc.pid if shipyard.proc else '?'}, "
                  f"data {shipyard.data_dir}, API http://127.0.0.1:{shipyard.api_port}, "
                  f"edge http://127.0.0.1:{shipyard.edge_port}\n"
                  f"  CLI:  SHIPYARD_DATA_DIR={shipyard.data_dir} HOME={shipyard.home} {sys.executable} -m shipyard …\n"
                  f"  stop: kill -INT {shipyard.proc.pid if shipyard.proc else '?'}; then rm -rf {root}")
        else:
            try:
                shipyard.kill_all()
            finally:
                shutil.rmtree(root, ignore_errors=True)
    print()
    print_table(outcomes, args.markdown)
    live = sum(o.live for o in outcomes)
    print(f"\n{live} of {len(outcomes)} live on the first push. Push logs: {logs}")
    skipped = [o for o in outcomes if o.repo.skipped]
    if skipped:
        print("Settings from the READMEs not applied, on purpose:")
        for o in skipped:
            print(f"  {o.repo.app}: {o.repo.skipped}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
