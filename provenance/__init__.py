"""Provenance and policy: C2PA manifests, visible and invisible watermarks, the prompt policy."""
from .c2pa_manifest import ProvenanceReport, ensure_local_identity, file_sha256, read_provenance, sign_video
from .policy import PolicyResult, check_prompt, enforce_policy, load_policy
from .visible_watermark import VisibleMarkConfig, add_visible_watermark
from .watermark import WatermarkConfig, WatermarkDetection, detect_invisible_watermark, embed_invisible_watermark

__all__ = [
    "ProvenanceReport", "ensure_local_identity", "file_sha256", "read_provenance", "sign_video",
    "PolicyResult", "check_prompt", "enforce_policy", "load_policy",
    "VisibleMarkConfig", "add_visible_watermark",
    "WatermarkConfig", "WatermarkDetection", "detect_invisible_watermark", "embed_invisible_watermark",
]
