"""poros-pack's error hierarchy (defined in poros_artifact so the runtime shares it)."""

from poros_artifact.errors import *  # noqa: F401,F403
from poros_artifact.errors import __all__  # noqa: F401
