from pathlib import Path

from shipyard.git.http_backend import cgi_env, parse_cgi_headers


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
