"""Built-in algorithms. Each module is a plugin registered through the ``agl`` entry points."""
