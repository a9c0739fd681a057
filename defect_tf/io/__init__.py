"""Writing files safely: atomic writes, disk-full errors, and the output folders the tool may change."""
