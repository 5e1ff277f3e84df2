"""geoalign.cli: the ``geoalign`` command. Thin: parses arguments and calls the library."""
