"""reduce: see the modules of this package."""
