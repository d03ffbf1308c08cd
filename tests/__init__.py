"""Repository-level tests of poros-pack."""
