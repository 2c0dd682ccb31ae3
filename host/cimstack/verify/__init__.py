"""Layer-by-layer comparison of a backend against the reference."""
