"""`python -m app`: serve the app under gunicorn (see app.server)."""

from app.server import main

if __name__ == "__main__":
    main()
