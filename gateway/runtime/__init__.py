"""Running the app: loading, function registry, ``ctx``, queries, the coroutine driver."""
