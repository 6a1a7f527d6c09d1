"""gunicorn settings for both servers under the bench: none beyond its command line.

``bench/run.py`` starts Vigil and django-oauth-toolkit with the same command line (``--workers
N --worker-class sync``, no access log). Without ``-c`` pointing here, gunicorn would read
Vigil's deployment settings (``./gunicorn.conf.py``, the working directory of Vigil's server):
its ``threads = 8`` turns the sync workers into gthread ones and its logging adds an access line
per request, which DOT, started elsewhere, would not get (runs before 2026-12-03 13:40 UTC were
skewed so, about 0.25 ms of CPU per request against Vigil).
"""
