"""_native: see the modules of this package."""
