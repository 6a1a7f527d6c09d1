"""The shared library: events, settings reading, crypto, cache, SQL helpers, keys. Imports no other app."""
