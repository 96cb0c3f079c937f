"""``python -m lasersell_bot``."""

from lasersell_bot.cli import main

raise SystemExit(main())
