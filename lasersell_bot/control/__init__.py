"""Control surface of a running daemon: HTTP API, dashboard, Telegram commands."""
