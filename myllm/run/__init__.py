"""A run directory: its files, each named once, and its lock."""
