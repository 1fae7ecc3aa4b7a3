"""`python -m app.dashboard [--host H] [--port P]`: serve the dashboard with the environment's settings
(the same as `uninote dashboard`)."""

from __future__ import annotations

import argparse
import logging
import sys

from app.dashboard.server import serve_dashboard
from app.secret_key import SecretKeyFileError, WeakSecretKeyError
from app.settings import get_settings

if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m app.dashboard", description=__doc__)
    parser.add_argument("--host", default=None)
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        serve_dashboard(get_settings(), args.host, args.port)
    except (WeakSecretKeyError, SecretKeyFileError) as e:
        sys.exit(f"error: {e}")
