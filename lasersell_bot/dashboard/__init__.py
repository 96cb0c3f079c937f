"""The dashboard: static files served by the daemon at ``/`` (no build step)."""
