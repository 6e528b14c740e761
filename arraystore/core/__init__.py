"""Pure, I/O-free building blocks: errors, dtype rules, chunk maths, metadata."""
