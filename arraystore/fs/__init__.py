"""fs: see the modules of this package."""
