"""The UniNote HTTP API (`uninote serve`): FastAPI over the same functions as the dashboard and the Python
client (UniNoteClient, app.banks.Banks). One router per resource (routes_*.py), authentication, scopes,
rate limits and the records as dependencies (deps.py), request/response schemas apart from the records'
dataclasses (schemas.py). Build the app with app.api.app.create_app."""
