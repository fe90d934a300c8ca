"""gunicorn settings for the benchmark, the same for the app and the ceiling.

Explicit rather than the project's gunicorn.conf.py, so the numbers compare the app with a
bare Flask route and not logging or worker settings that may change.
"""

workers = 2
worker_class = "sync"
accesslog = None
errorlog = "-"
loglevel = "warning"
