"""The git credential helper that hands `git push` the platform's token, so remote URLs never carry it."""

from __future__ import annotations

import os
import shlex
import subprocess

from shipyard.cli.context import client, out, state
from shipyard.settings import Settings


def install_credential_helper(api_url: str) -> str | None:
    """Point git at the platform token for this API URL, in the user's global git config.

    The helper is a shell function, not a Python command, so it adds nothing to a push's time:
    for a local platform it reads the token file (so a new token is picked up), for a remote
    one it hands over $SHIPYARD_TOKEN as it is at push time.
    """
    if os.environ.get("SHIPYARD_API_URL") and not state.data_dir:
        password = '"$SHIPYARD_TOKEN"'
    else:
        settings = Settings(data_dir=state.data_dir.resolve()) if state.data_dir else Settings()
        password = f"$(cat {shlex.quote(str(settings.token_file))})"
    helper = f'!f() {{ test "$1" = get && echo username=shipyard && echo "password={password}"; }}; f'
    key = f"credential.{api_url}.helper"
    done = subprocess.run(["git", "config", "--global", "--replace-all", key, helper], capture_output=True)
    return "your global git config" if done.returncode == 0 else None


def git_auth() -> None:
    """Let `git push` to this platform use its token (a credential helper in your global git config)."""
    api_url = client().target.api_url
    where = install_credential_helper(api_url)
    if where is None:
        out.print(f"Could not write git's config: git will ask for a password for {api_url}; give it the "
                  "platform token (any username).")
        raise SystemExit(1)
    out.print(f"git now gets the platform token for {api_url} from a credential helper in {where}.")
