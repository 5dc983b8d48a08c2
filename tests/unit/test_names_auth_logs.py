import base64
import os

import pytest

from shipyard.api.auth import check_token, load_or_create_token, presented_token
from shipyard.errors import InvalidInput, Unauthorized
from shipyard.runtime.logs import AppLog, format_line
from shipyard.runtime.spec import next_backoff
from shipyard.store.names import validate_app_name, validate_config_key


@pytest.mark.parametrize("name", ["todo", "my-blog-2", "a"])
def test_valid_app_names(name):
    assert validate_app_name(name) == name


@pytest.mark.parametrize("name", ["Todo", "-x", "x-", "my_app", "1app", "a" * 31, "", "a.b"])
def test_invalid_app_names(name):
    with pytest.raises(InvalidInput) as info:
        validate_app_name(name)
    assert "DNS label" in info.value.hint


def test_config_keys():
    assert validate_config_key("SECRET_KEY") == "SECRET_KEY"
    for bad in ("1X", "A-B", "PORT"):
        with pytest.raises(InvalidInput):
            validate_config_key(bad)


def test_token_file_is_private_and_stable(tmp_path):
    token = load_or_create_token(tmp_path / "token")
    assert oct(os.stat(tmp_path / "token").st_mode & 0o777) == "0o600"
    assert load_or_create_token(tmp_path / "token") == token


def test_bearer_and_basic_tokens():
    assert presented_token("Bearer abc") == "abc"
    assert presented_token("Basic " + base64.b64encode(b"shipyard:abc").decode()) == "abc"
    assert presented_token(None) is None
    check_token("Bearer abc", "abc")
    with pytest.raises(Unauthorized):
        check_token("Bearer abd", "abc")
    with pytest.raises(Unauthorized):
        check_token(None, "abc")


def test_backoff_doubles_up_to_a_minute():
    delays = [0.0]
    for _ in range(8):
        delays.append(next_backoff(delays[-1]))
    assert delays[1:] == [1, 2, 4, 8, 16, 32, 60, 60]


def test_log_lines_are_stamped_and_rotate(tmp_path):
    log = AppLog(tmp_path / "app.log", max_bytes=200, backups=2)
    for i in range(20):
        log.write("app[web.1]", f"line {i}")
    assert (tmp_path / "app.log.1").exists() and (tmp_path / "app.log.2").exists()
    assert not (tmp_path / "app.log.3").exists()
    assert log.tail(1)[0].endswith("app[web.1]: line 19")
    assert format_line("app[web.1]", "hi\n").split(" ", 1)[1] == "app[web.1]: hi\n"
