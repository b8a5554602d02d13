"""A WSGI app for tests/python/test_multiprocess_gunicorn.py, served by gunicorn's sync workers.

Counts requests by route, observes their sizes in a histogram, and serves
the multi-process aggregate on /metrics (whichever worker answers).
PYVEDA_MULTIPROC_DIR is set by the test before gunicorn starts.
"""

from pyveda.telemetry import Counter, Gauge, Histogram, make_wsgi_app

REQUESTS = Counter("app_requests", "Requests served, by route.", ["route"])
SIZES = Histogram("app_request_size_bytes", "Request sizes.", buckets=(10, 100, 1000))
# Set to 1 by each worker once it is ready (gunicorn's post_worker_init hook).
WORKERS_UP = Gauge("app_workers_up", "Workers running.", multiprocess_mode="livesum")
WORKERS_EVER = Gauge("app_workers_started", "Workers ever started.", multiprocess_mode="sum")

_metrics = make_wsgi_app()


def app(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path == "/metrics":
        return _metrics(environ, start_response)
    route = path.strip("/").split("/")[0] or "root"
    REQUESTS.labels(route).inc()
    SIZES.observe(len(path))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok\n"]
