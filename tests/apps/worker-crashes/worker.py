"""The background worker, now fed by a Redis queue (`rq worker` / `celery worker` in real apps).

It connects at start: without a Redis (no REDIS_URL add-on yet) it dies at once with ConnectionRefusedError.
"""

from redisq import QUEUE, Redis

redis = Redis()
redis.command("PING")
print("worker connected to Redis, waiting for jobs", flush=True)
while True:
    popped = redis.command("BLPOP", QUEUE, 0)
    if popped:
        print(f"worker processed {popped[1]}", flush=True)
