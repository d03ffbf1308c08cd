"""Segmentation: which nodes become engines, and the outlined glue graph that calls them."""

from packager.segment.capability import (
    CONTROL_FLOW_OPS,
    EFFECT_OPS,
    FALLBACK_OP_REASON,
    Capability,
    all_of,
    deny_ops,
    has_side_effects,
    mutates_input,
    structural_rules,
)
from packager.segment.outline import ENGINE_OP, outline
from packager.segment.partition import PLUMBING_OPS, Partition, Segment, partition

__all__ = [
    "partition", "outline", "Partition", "Segment", "ENGINE_OP", "PLUMBING_OPS",
    "Capability", "all_of", "deny_ops", "FALLBACK_OP_REASON", "structural_rules", "has_side_effects", "mutates_input",
    "CONTROL_FLOW_OPS", "EFFECT_OPS",
]
