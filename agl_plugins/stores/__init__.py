"""Built-in store backends."""
