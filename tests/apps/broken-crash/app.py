import os
import sys

print("Reading configuration …")
if "DATABASE_URL" not in os.environ:
    print("KeyError: DATABASE_URL is not set", file=sys.stderr)
    sys.exit(3)
