"""A background worker: processes a job every half second (here: says so)."""

import time

tick = 0
while True:
    tick += 1
    print(f"worker processed job {tick}", flush=True)
    time.sleep(0.5)
