"""Flow-matching sampling and spacetime conditioning: `sample`, `Keyframe`, `Keyframes`, `TextConditioning`."""
from .conditioning import (FRAME_POLICY, RESIZE_POLICY, Keyframe, Keyframes, TextConditioning, latent_frame_of,
                           parse_prompt_schedule)
from .denoise import MECHANISMS, resolve_mechanism
from .first_frame import FIRST_FRAME_CANDIDATES, MAX_CANDIDATES
from .long_video import frames_for_seconds
from .sample import SampleResult, describe_mechanism, sample
from .schedules import flow_sigmas
from .solvers import SOLVERS, get_solver

__all__ = ["FIRST_FRAME_CANDIDATES", "FRAME_POLICY", "MAX_CANDIDATES", "MECHANISMS", "RESIZE_POLICY", "SOLVERS",
           "Keyframe", "Keyframes", "SampleResult", "TextConditioning", "describe_mechanism", "flow_sigmas",
           "frames_for_seconds", "get_solver", "latent_frame_of", "parse_prompt_schedule", "resolve_mechanism",
           "sample"]
