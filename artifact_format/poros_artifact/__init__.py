"""poros_artifact: reader/writer of the .poros archive format (spec: FORMAT.md).

Stdlib + zstandard only; never imports torch, so hosts and tools can inspect and verify an
artifact without the deep-learning stack.
"""

from ._manifest import MemberInfo
from ._names import validate_member_name
from ._reader import Artifact, read_artifact
from ._version import FORMAT_VERSION, FORMAT_VERSION_STRING, SUPPORTED_FEATURES, check_version
from ._writer import write_artifact

__all__ = [
    "FORMAT_VERSION",
    "FORMAT_VERSION_STRING",
    "SUPPORTED_FEATURES",
    "Artifact",
    "MemberInfo",
    "check_version",
    "read_artifact",
    "validate_member_name",
    "write_artifact",
]
