"""Maintenance commands behind the Makefile (execute notebooks, build student versions)."""
