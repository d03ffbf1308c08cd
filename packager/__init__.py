"""poros-pack: ahead-of-time deployment packager."""

__version__ = "0.1.0"
