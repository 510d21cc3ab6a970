"""Built-in execution strategies: ``shm`` (threads, one process) and ``cs`` (agl-server and
runner processes). Each module is a plugin registered through the ``agl`` entry points."""
