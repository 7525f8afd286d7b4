"""The bundled web service: a small Flask app with Kubernetes health probes.

`app.factory.create_app()` builds the WSGI application; `python -m app` serves
it under gunicorn with a drain-aware shutdown (see `app.server`). This module
imports nothing, so `python -m app` can catch shutdown signals before the heavy
imports begin (see `app.early_signals`).
"""

__version__ = "1.4.2"
