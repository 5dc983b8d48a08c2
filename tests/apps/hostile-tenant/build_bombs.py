"""Run as a build command: `fork` forks until the kernel says no, `memory` allocates far past any limit."""

import errno
import os
import sys
import time

if sys.argv[1] == "fork":
    children = 0
    try:
        while children < 5000:
            if os.fork() == 0:
                time.sleep(30)
                os._exit(0)
            children += 1
        print("BUILD-BOMB never stopped")
    except OSError as exc:
        print(f"BUILD-BOMB stopped after {children} forks: {errno.errorcode.get(exc.errno or 0)}")
else:
    hoard = []
    for _ in range(128):  # 4 GB, touched page by page
        hoard.append(bytearray(32 * 1024 * 1024))
        for page in range(0, len(hoard[-1]), 4096):
            hoard[-1][page] = 1
    print("BUILD-BOMB kept 4 GB")
