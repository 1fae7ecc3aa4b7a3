"""The Gradio moderator dashboard (issue 4): sign-in, Check a note, Review queue, Library, Thresholds,
Audit log, and admin pages. Every button calls the functions UniNoteClient exposes (app/client.py,
app/moderation.py): the UI holds no logic.

    from app.dashboard import serve_dashboard, add_user
"""

from app.dashboard.server import add_user, serve_dashboard

__all__ = ["add_user", "serve_dashboard"]
