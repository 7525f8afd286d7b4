"""A module-level WSGI app, for tools that want `app.wsgi:application`.

Production uses `python -m app`, which adds the readiness drain; this
entry point has no shared shutdown flag across workers.
"""

from app import create_app

application = create_app()
