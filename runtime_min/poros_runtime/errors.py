"""The poros-pack error hierarchy, re-exported from :mod:`poros_artifact.errors`.

The runtime raises the same classes as the packager and the format library, so a caller can
catch ``poros_runtime.errors.PorosError`` (or a subclass) whatever layer failed.
"""

from poros_artifact.errors import *  # noqa: F401,F403
from poros_artifact.errors import __all__  # noqa: F401
