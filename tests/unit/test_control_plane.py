"""Control-plane hardening (issue 10): the token file, Bearer vs Basic, the console's Origin check,
config value limits, and `shipyard run` never taking the user's command for options."""

from __future__ import annotations

import base64
import json
import os
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from starlette.websockets import WebSocketDisconnect
from typer.testing import CliRunner

from shipyard.api.auth import MIN_TOKEN_LENGTH, check_token, load_or_create_token
from shipyard.api.console import POLICY_VIOLATION, check_origin
from shipyard.api.server import challenge, create_api
from shipyard.cli import main as cli_main
from shipyard.cli import processes as cli_processes
from shipyard.cli.console import RunArgs, split_run_args
from shipyard.errors import InvalidInput, NotFound, PlatformError, ShipyardError, Unauthorized
from shipyard.settings import Settings
from shipyard.store.names import (CONFIG_TOTAL_LIMIT, CONFIG_VALUE_LIMIT, validate_app_name, validate_command,
                                  validate_config_key, validate_config_total, validate_config_value)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette suggests httpx2 for its test client; httpx is what we have
    from fastapi.testclient import TestClient

TOKEN = "t" * 8 + "0123456789abcdefghijklmnopqrstuvwxyz"


# The token file

def write_token(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_a_new_token_is_long_private_and_stable(tmp_path: Path) -> None:
    token = load_or_create_token(tmp_path / "token")
    assert len(token) >= MIN_TOKEN_LENGTH
    assert oct(os.stat(tmp_path / "token").st_mode & 0o777) == "0o600"
    assert load_or_create_token(tmp_path / "token") == token


def test_a_token_the_operator_wrote_is_used(tmp_path: Path) -> None:
    path = write_token(tmp_path / "token", f"{TOKEN}\n")
    assert load_or_create_token(path) == TOKEN
    os.chmod(path, 0o400)  # read-only for its owner is private too
    assert load_or_create_token(path) == TOKEN


@pytest.mark.parametrize("text,says", [("", "is empty"), ("\n  \n", "is empty"), ("short-token\n", "has 11 characters"),
                                       ("x" * 31, "has 31 characters"), ("a b" * 20, "printable ASCII"),
                                       ("é" * 40, "printable ASCII")])
def test_an_empty_short_or_odd_token_file_refuses_to_start(tmp_path: Path, text: str, says: str) -> None:
    path = write_token(tmp_path / "token", text)
    with pytest.raises(PlatformError) as info:
        load_or_create_token(path)
    assert says in info.value.message and str(path) in info.value.message
    assert f"rm {path}" in info.value.hint and "at least 32 random characters" in info.value.hint
    assert path.read_text() == text  # refused, not replaced behind the operator's back


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_token_file_others_can_read_refuses_to_start(tmp_path: Path, mode: int) -> None:
    path = write_token(tmp_path / "token", TOKEN, mode)
    with pytest.raises(PlatformError) as info:
        load_or_create_token(path)
    assert f"mode {mode:04o}" in info.value.message
    assert f"chmod 600 {path}" in info.value.hint and f"rm {path}" in info.value.hint
    assert os.stat(path).st_mode & 0o777 == mode


def test_a_token_file_that_is_a_link_or_someone_elses_refuses_to_start(tmp_path: Path) -> None:
    real = write_token(tmp_path / "elsewhere", TOKEN)
    (tmp_path / "token").symlink_to(real)
    with pytest.raises(PlatformError, match="symbolic link"):
        load_or_create_token(tmp_path / "token")
    if os.geteuid() == 0:
        os.chown(real, 12345, 12345)
        with pytest.raises(PlatformError, match="belongs to uid 12345") as info:
            load_or_create_token(real)
        assert "chown" in info.value.hint


# Bearer everywhere, Basic only for git

def basic(password: str) -> str:
    return "Basic " + base64.b64encode(f"shipyard:{password}".encode()).decode()


def test_basic_is_refused_unless_allowed() -> None:
    check_token(f"Bearer {TOKEN}", TOKEN)
    check_token(basic(TOKEN), TOKEN, allow_basic=True)
    check_token(f"Bearer {TOKEN}", TOKEN, allow_basic=True)
    with pytest.raises(Unauthorized, match="only for git"):
        check_token(basic(TOKEN), TOKEN)
    with pytest.raises(Unauthorized, match="not valid"):
        check_token(basic("wrong"), TOKEN, allow_basic=True)


def test_basic_challenge_only_under_git() -> None:
    assert challenge("/git/todo.git/info/refs").startswith("Basic ")
    assert challenge("/apps").startswith("Bearer ") and challenge("/gitx/a").startswith("Bearer ")


class FakeStore:
    def __init__(self) -> None:
        self.config: dict[str, str] = {"BIG": "x" * 30_000}

    def get_app(self, name: str) -> Any:
        if name != "todo":
            raise NotFound(f"There is no app named '{name}'.")
        return SimpleNamespace(name=name)

    def get_config(self, name: str) -> dict[str, str]:
        self.get_app(name)
        return dict(self.config)

    def build_time_keys(self, name: str) -> set[str]:
        return set()


class FakePlatform:
    def __init__(self, tmp_path: Path) -> None:
        self.settings = Settings(data_dir=tmp_path, api_port=8470)
        self.store = FakeStore()
        self.consoles: list[str] = []
        self.runs: list[str] = []

    async def update_config(self, name: str, set_vars: dict[str, str], unset: list[str], log: Any,
                            build_time: bool = False) -> None:
        self.store.config.update(set_vars)
        for key in unset:
            self.store.config.pop(key, None)

    async def console(self, name: str, command: str, columns: int, rows: int, term: str) -> Any:
        self.consoles.append(command)
        raise InvalidInput(f"{name} has no release to run commands in yet.")

    async def run(self, name: str, command: str, echo: Any) -> int:
        self.runs.append(command)
        return 0


@pytest.fixture
def api(tmp_path: Path) -> tuple[TestClient, FakePlatform]:
    platform = FakePlatform(tmp_path)
    return TestClient(create_api(platform, SimpleNamespace(), TOKEN)), platform  # type: ignore[arg-type]


def test_api_401s_challenge_bearer_and_git_401s_basic(api: tuple[TestClient, FakePlatform]) -> None:
    client, _ = api
    for headers in ({}, {"Authorization": basic(TOKEN)}, {"Authorization": "Bearer wrong"}):
        response = client.get("/apps/todo/config", headers=headers)
        assert response.status_code == 401 and response.headers["www-authenticate"] == 'Bearer realm="Shipyard"'
    assert "only for git" in client.get("/apps/todo/config", headers={"Authorization": basic(TOKEN)}).json()["error"]
    assert client.get("/apps/todo/config", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    git = client.get("/git/todo.git/info/refs", params={"service": "git-receive-pack"})
    assert git.status_code == 401 and git.headers["www-authenticate"] == 'Basic realm="Shipyard"'
    wrong = client.get("/git/todo.git/info/refs", headers={"Authorization": basic("wrong")})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"].startswith("Basic ")


# The console's WebSocket

def test_origin_must_be_the_apis_own() -> None:
    own = "http://127.0.0.1:8470"
    check_origin(None, own)  # a program, such as the CLI
    check_origin("http://127.0.0.1:8470", own)
    check_origin("HTTP://127.0.0.1:8470/", own)
    for other in ("http://evil.example", "http://127.0.0.1:8471", "https://127.0.0.1:8470", "http://localhost:8470",
                  "null", "", "http://127.0.0.1:8470.evil.example", "http://127.0.0.1:notaport"):
        with pytest.raises(Unauthorized):
            check_origin(other, own)


def console_frames(client: TestClient, headers: dict[str, str], command: str = "bash") -> tuple[dict, int | None]:
    with client.websocket_connect(f"/apps/todo/console?command={command}", headers=headers) as ws:
        first = json.loads(ws.receive_text())
        try:
            ws.receive_text()
        except WebSocketDisconnect as closed:
            return first, closed.code
    return first, None


def test_console_refuses_other_origins_and_missing_tokens_before_anything_runs(
        api: tuple[TestClient, FakePlatform]) -> None:
    client, platform = api
    good = {"Authorization": f"Bearer {TOKEN}"}
    first, code = console_frames(client, {**good, "Origin": "http://evil.example"})
    assert "other origins" in first["error"] and code == POLICY_VIOLATION
    first, code = console_frames(client, {"Origin": "http://127.0.0.1:8470", "Authorization": basic(TOKEN)})
    assert "only for git" in first["error"] and code == POLICY_VIOLATION
    first, code = console_frames(client, {})
    assert first["error"] == "Authentication required." and code == POLICY_VIOLATION
    assert platform.consoles == []
    # The CLI (no Origin) and a page of the API's own origin get through to the platform.
    assert "no release" in console_frames(client, good, "--version")[0]["error"]
    assert "no release" in console_frames(client, {**good, "Origin": "http://127.0.0.1:8470"})[0]["error"]
    assert platform.consoles == ["--version", "bash"]


# Config vars

def test_config_values_without_nul_and_within_the_limits() -> None:
    assert validate_config_value("CERT", "-----BEGIN\nline=2\n-----END\n") == "-----BEGIN\nline=2\n-----END\n"
    validate_config_value("MAX", "x" * CONFIG_VALUE_LIMIT)
    with pytest.raises(InvalidInput) as info:
        validate_config_value("BLOB", "a\0b")
    assert "BLOB" in info.value.message and "NUL" in info.value.message and "base64" in info.value.hint
    with pytest.raises(InvalidInput) as info:
        validate_config_value("BLOB", "x" * (CONFIG_VALUE_LIMIT + 1))
    assert "BLOB" in info.value.message and "at most 32 KB" in info.value.message and "repository" in info.value.hint
    with pytest.raises(InvalidInput, match="BLOB"):
        validate_config_value("BLOB", "é" * (CONFIG_VALUE_LIMIT // 2 + 1))  # bytes, not characters
    with pytest.raises(InvalidInput, match="surrogate"):
        validate_config_value("BLOB", "\ud800")


def test_config_total_counts_existing_vars_and_the_change() -> None:
    existing = {"A": "x" * 30_000, "B": "y" * 30_000}
    validate_config_total(existing, {"C": "z" * 4000}, [])
    with pytest.raises(InvalidInput) as info:
        validate_config_total(existing, {"C": "z" * 6000}, [])
    assert "at most 64 KB" in info.value.message and "unset" in info.value.hint
    validate_config_total(existing, {"C": "z" * 30_000}, ["A"])  # room made in the same change
    validate_config_total(existing, {"A": "x" * 32_000}, [])  # a replaced value counts once
    too_big = {f"K{i}": "v" * 30_000 for i in range(3)}  # already over (e.g. from an older version)
    validate_config_total(too_big, {"K0": "small"}, [])  # shrinking is always allowed
    with pytest.raises(InvalidInput):
        validate_config_total(too_big, {"K3": "more"}, [])
    assert CONFIG_TOTAL_LIMIT == 64 * 1024


@pytest.mark.parametrize("key", ["A=B", "A\nB", "A\n", "PORT\n", "A B", "", "Ä"])
def test_config_keys_cannot_split_the_environment(key: str) -> None:
    with pytest.raises(InvalidInput):
        validate_config_key(key)


def test_app_names_have_no_trailing_newline() -> None:
    with pytest.raises(InvalidInput):
        validate_app_name("todo\n")


def test_update_config_refuses_large_and_nul_values(api: tuple[TestClient, FakePlatform]) -> None:
    client, platform = api
    auth = {"Authorization": f"Bearer {TOKEN}"}
    nul = client.patch("/apps/todo/config", json={"set": {"KEY": "a\u0000b"}}, headers=auth)
    assert nul.status_code == 422 and "The value of KEY contains a NUL byte" in nul.json()["error"]
    large = client.patch("/apps/todo/config", json={"set": {"LARGE": "x" * 40_000}}, headers=auth)
    assert large.status_code == 422 and "LARGE" in large.json()["error"]
    total = client.patch("/apps/todo/config", json={"set": {"MORE": "x" * 32_000, "EVEN": "y" * 10_000}},
                         headers=auth)
    assert total.status_code == 422 and "64 KB" in total.json()["error"]
    assert set(platform.store.config) == {"BIG"}  # nothing of a refused change is stored
    ok = client.patch("/apps/todo/config", json={"set": {"MORE": "x" * 32_000}, "unset": ["BIG"]}, headers=auth)
    assert ok.status_code == 200 and set(platform.store.config) == {"MORE"}


# `shipyard run`: the command is never options

def test_run_commands_are_validated_not_parsed() -> None:
    assert validate_command("--version") == "--version"
    assert validate_command("-c 'echo hi'") == "-c 'echo hi'"
    for bad in ("", "   ", "echo \0", "x" * 40_000):
        with pytest.raises(InvalidInput):
            validate_command(bad)


@pytest.mark.parametrize("args,expected", [
    (["--", "-c", "echo hi"], RunArgs(["-c", "echo hi"])),
    (["--", "--version"], RunArgs(["--version"])),
    (["--", "-d"], RunArgs(["-d"])),
    (["--", "--help"], RunArgs(["--help"])),
    (["-d", "--", "python", "-d"], RunArgs(["python", "-d"], detach=True)),
    (["--no-tty", "python", "-c", "print(1)"], RunArgs(["python", "-c", "print(1)"], no_tty=True)),
    (["ls", "-d", "--no-tty", "--"], RunArgs(["ls", "-d", "--no-tty", "--"])),
    (["--", "python", "--", "-d"], RunArgs(["python", "--", "-d"])),
    ([], RunArgs([])),
    (["--"], RunArgs([])),
    (["--help"], RunArgs([], help=True)),
])
def test_split_run_args(args: list[str], expected: RunArgs) -> None:
    assert split_run_args(args) == expected


def test_an_unknown_option_before_the_command_says_to_use_dashes() -> None:
    with pytest.raises(ShipyardError) as info:
        split_run_args(["-x", "foo"])
    assert "`shipyard run APP -- -x foo`" in info.value.hint


class FakeClient:
    def __init__(self) -> None:
        self.sent: list[Any] = []
        self.target = SimpleNamespace(api_url="http://127.0.0.1:8470", token=TOKEN)

    def stream_lines(self, path: str, method: str = "GET", json: Any = None) -> list[str]:
        self.sent.append((path, json))
        return ['{"detached": true}'] if json["detach"] else ['{"output": "ran"}', '{"exit": 7}']


@pytest.mark.parametrize("argv,command,detach", [
    (["run", "todo", "--", "-c", "echo hi"], "-c 'echo hi'", False),
    (["run", "todo", "--", "--version"], "--version", False),
    (["run", "todo", "--", "--no-tty"], "--no-tty", False),
    (["run", "todo", "ls", "-d"], "ls -d", False),
    (["run", "todo", "-d", "--", "python", "long_job.py", "--detach"], "python long_job.py --detach", True),
    (["run", "-d", "todo", "--", "-x"], "-x", True),
    (["run", "todo", "--no-tty", "--", "echo", "a b;c"], "echo 'a b;c'", False),
])
def test_cli_run_sends_the_command_verbatim(monkeypatch: pytest.MonkeyPatch, argv: list[str], command: str,
                                            detach: bool) -> None:
    fake = FakeClient()
    monkeypatch.setattr(cli_processes, "client", lambda: fake)
    result = CliRunner().invoke(cli_main.app, argv)
    assert fake.sent == [("/apps/todo/runs", {"command": command, "detach": detach})], result.output
    assert result.exit_code == (0 if detach else 7)


def test_cli_run_help_and_unknown_options(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeClient()
    monkeypatch.setattr(cli_processes, "client", lambda: fake)
    shown = CliRunner().invoke(cli_main.app, ["run", "todo", "--help"])
    assert shown.exit_code == 0 and "--no-tty" in shown.output
    refused = CliRunner().invoke(cli_main.app, ["run", "todo", "--detatch", "job"])
    assert isinstance(refused.exception, ShipyardError) and "--detatch" in refused.exception.message
    assert fake.sent == []
