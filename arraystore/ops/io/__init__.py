"""io: see the modules of this package."""
