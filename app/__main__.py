"""`python -m app`: serve the app under gunicorn (see app.server).

Shutdown signals are caught before anything else is imported (see app.early_signals).
"""

from app.early_signals import hold_shutdown_signals

hold_shutdown_signals()

from app.server import main  # noqa: E402  (after the signal handlers, on purpose)

if __name__ == "__main__":
    main()
