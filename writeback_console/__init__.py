"""Writeback Console: the desktop tool for the Informz → Personify360 writeback queue."""

__version__ = "0.1.0"
