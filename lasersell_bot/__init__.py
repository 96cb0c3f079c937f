"""lasersell-bot: a standalone client daemon for the LaserSell Exit Intelligence Stream."""

__version__ = "0.1.0"
