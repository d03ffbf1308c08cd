"""Helpers shared by the tests of every part of the repository."""
