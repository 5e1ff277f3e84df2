"""Example recipes shipped with geoalign (YAML files; see ``geoalign recipes``)."""
