"""Reports: atomic JSON output and readable tables."""
