"""The `worker:` process: takes pending jobs from the database and does them (reverses the payload)."""

import time

from app import Job, app, db


def work_once() -> int:
    done = 0
    with app.app_context():
        # SKIP LOCKED: several workers (ps:scale worker=2) never take the same job.
        jobs = db.session.execute(db.select(Job).where(Job.result.is_(None)).with_for_update(skip_locked=True)
                                  .limit(10)).scalars().all()
        for job in jobs:
            job.result = job.payload[::-1]
            print(f"worker processed job {job.id}", flush=True)
            done += 1
        db.session.commit()
    return done


if __name__ == "__main__":
    print("worker started", flush=True)
    while True:
        if not work_once():
            time.sleep(0.2)
