"""SkyFrame: self-hosted drone footage enhancement."""

__version__ = "0.1.0"
