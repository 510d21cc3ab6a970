"""Built-in plugins. Each module here is registered through the ``agl`` entry-point group in
pyproject.toml, exactly as a third-party package would register its own."""
