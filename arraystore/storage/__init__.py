"""storage: see the modules of this package."""
