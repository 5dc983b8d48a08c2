"""The release phase: stands in for `flask db upgrade`; RELEASE_EXIT makes it fail like a bad migration."""

import os
import sys

print(f"migrating the database for {os.environ['SHIPYARD_RELEASE']}", flush=True)
code = int(os.environ.get("RELEASE_EXIT", "0"))
if code:
    print("ERROR: migration 0042_add_column failed: column \"done\" already exists", flush=True)
sys.exit(code)
