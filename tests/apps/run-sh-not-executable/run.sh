#!/usr/bin/env bash
# Committed from a machine (or a zip upload) that lost the executable bit: `./run.sh` cannot run.
set -e
echo "starting gunicorn on port $PORT"
exec gunicorn --bind "0.0.0.0:$PORT" app:app
