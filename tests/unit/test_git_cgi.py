import gzip
from pathlib import Path

from shipyard.git.http_backend import cgi_env, parse_cgi_headers
from shipyard.git.push_queue import pkt_line, progress_message, push_capabilities


def test_cgi_headers():
    status, headers = parse_cgi_headers(b"Status: 404 Not Found\r\nContent-Type: text/plain\r\n")
    assert status == 404 and headers == [("Content-Type", "text/plain")]
    assert parse_cgi_headers(b"Content-Type: application/x-git-receive-pack-result")[0] == 200


def test_cgi_env_passes_protocol_and_encoding():
    env = cgi_env(repos_root=Path("/r"), path_info="/todo.git/git-receive-pack", method="POST", query="",
                  headers={"content-type": "application/x-git-receive-pack-request", "content-encoding": "gzip",
                           "git-protocol": "version=2"}, remote_addr="127.0.0.1", extra={"SHIPYARD_APP": "todo"})
    assert env["HTTP_CONTENT_ENCODING"] == "gzip" and env["GIT_PROTOCOL"] == "version=2"
    assert env["GIT_PROJECT_ROOT"] == "/r" and env["SHIPYARD_APP"] == "todo"


def test_push_capabilities_come_from_the_first_command() -> None:
    command = b"0" * 40 + b" " + b"1" * 40 + b" refs/heads/main\0report-status side-band-64k agent=git/2.47\n"
    body = pkt_line(command) + b"0000PACK..."
    assert push_capabilities(body) == {"report-status", "side-band-64k", "agent=git/2.47"}
    assert push_capabilities(gzip.compress(body), "gzip") == {"report-status", "side-band-64k", "agent=git/2.47"}
    assert push_capabilities(b"0000") == set()  # git's probe before a large push
    assert push_capabilities(b"") == set()


def test_progress_messages_go_on_sideband_two_when_the_client_has_one() -> None:
    assert progress_message("waiting", {"side-band-64k"}) == b"000d\x02waiting\n"
    assert progress_message("waiting", {"report-status"}) == b""
