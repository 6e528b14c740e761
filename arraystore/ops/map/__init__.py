"""map: see the modules of this package."""
