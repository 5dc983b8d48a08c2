# gunicorn reads this file from its working folder by itself. The port is fixed, as in many Docker-first apps.
import multiprocessing

bind = "0.0.0.0:8000"
workers = min(multiprocessing.cpu_count() * 2 + 1, 3)
accesslog = "-"
