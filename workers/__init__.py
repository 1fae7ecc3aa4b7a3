"""Celery workers over the plain pipeline functions."""
