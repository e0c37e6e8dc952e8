"""Keyframe nodes: Image to Video, Extend Video (forward / backward), Infill Frames.

Each builds SPACETIME_KEYFRAMES (known pixel frames at frame indices) for the Spacetime Sampler, which applies
them according to the model. The policies for sizes and frame positions are the sampler's (RESIZE_POLICY,
FRAME_POLICY), quoted in each node's description.
"""
from ..core.errors import SpacetimeError
from ..sampler import FRAME_POLICY, RESIZE_POLICY, Keyframes

STRENGTH = {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01}
CLIP_VISION = ("SPACETIME_CLIP_VISION", {"tooltip": "Only for Wan 2.1 I2V / FLF2V 14B, which also read the start (and "
                                                    "last) image through CLIP vision: Spacetime Load CLIP Vision with "
                                                    "clip_vision_h. Other models ignore it."})
FPS = {"default": 16.0, "min": 1.0, "max": 120.0, "step": 1.0}


class SpacetimeImageToVideo:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "vae": ("SPACETIME_VAE", {"tooltip": "The VAE of the model (encodes the image)."}),
                "start_image": ("IMAGE", {"tooltip": "The first frame of the video (the first image of a batch); "
                                                     "centre-cropped to the video's aspect, then resized."}),
                "strength": ("FLOAT", {**STRENGTH, "tooltip":
                    "How strictly the video keeps the image: 1 exactly, lower lets the sampler drift from it."}),
            },
            "optional": {
                "keyframes": ("SPACETIME_KEYFRAMES", {"tooltip": "Keyframes to add this start frame to (chain "
                                                                 "Infill Frames or another Image to Video)."}),
                "clip_vision": CLIP_VISION,
            },
        }

    RETURN_TYPES = ("SPACETIME_KEYFRAMES",)
    RETURN_NAMES = ("keyframes",)
    FUNCTION = "build"
    CATEGORY = "Spacetime/conditioning"
    DESCRIPTION = f"Image to video: makes the image a keyframe at frame 0 for the Spacetime Sampler; {RESIZE_POLICY}."

    def build(self, vae, start_image, strength, keyframes=None, clip_vision=None):
        return (Keyframes.from_images(vae, start_image[:1], [0], strength=strength, base=keyframes,
                                      clip_vision=clip_vision),)


class SpacetimeExtendVideo:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "vae": ("SPACETIME_VAE", {"tooltip": "The VAE of the model (encodes the clip's frames)."}),
            "video": ("IMAGE", {"tooltip": "The clip to extend, as frames (e.g. from Spacetime Load Video)."}),
            "direction": (["forward", "backward"], {"tooltip":
                "forward adds time after the clip's last frame; backward adds time before its first frame."}),
            "add_seconds": ("FLOAT", {"default": 5.0, "min": 0.25, "max": 60.0, "step": 0.25, "tooltip":
                "How much time to add; the total is rounded up to 4k+1 frames."}),
            "fps": ("FLOAT", {**FPS, "tooltip": "Frame rate of the clip and the extension."}),
            "context_frames": ("INT", {"default": 0, "min": 0, "max": 4096, "step": 4, "tooltip":
                "Frames each new window shares with the clip or the previous window, rounded up to whole latent "
                "frames of 4; 0 lets the sampler choose (a quarter of the model's window)."}),
            "anchor_first_frame": ("BOOLEAN", {"default": False, "tooltip":
                "Also keep the clip's first frame as a keyframe in every window, so the subject stays itself "
                "over a long extension."}),
        }, "optional": {"clip_vision": CLIP_VISION}}

    RETURN_TYPES = ("LATENT", "SPACETIME_KEYFRAMES")
    RETURN_NAMES = ("latent", "keyframes")
    FUNCTION = "build"
    CATEGORY = "Spacetime/conditioning"
    DESCRIPTION = ("Extends a clip forwards or backwards in time: returns a latent covering clip + extension and "
                   "the clip's frames as keyframes; the sampler fills the rest window by window.")

    def build(self, vae, video, direction, add_seconds, fps, context_frames, anchor_first_frame, clip_vision=None):
        latent, keyframes = Keyframes.extension(vae, video, direction=direction, add_seconds=add_seconds, fps=fps,
                                                context_frames=context_frames or None,
                                                anchor_first_frame=anchor_first_frame, clip_vision=clip_vision)
        return ({"samples": latent}, keyframes)


class SpacetimeInfillFrames:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "vae": ("SPACETIME_VAE", {"tooltip": "The VAE of the model (encodes the keyframes)."}),
                "images": ("IMAGE", {"tooltip": "The keyframes as an image batch, in the order of frame_indices."}),
                "frame_indices": ("STRING", {"default": "0,80", "tooltip":
                    "Comma-separated frame index of each image (0 = first frame, -1 = last). A keyframe between "
                    "latent frames (pixel frames 4k+2..4k+4) pins that whole group of 4 frames."}),
                "length": ("INT", {"default": 81, "min": 1, "max": 4097, "step": 4, "tooltip":
                    "Length of the video in frames (4k+1); must match the Empty Latent Video's frames."}),
                "fps": ("FLOAT", {**FPS, "tooltip": "Frame rate, for the timeline's seconds."}),
                "strength": ("FLOAT", {**STRENGTH, "tooltip": "How strictly the video keeps the keyframes."}),
            },
            "optional": {
                "keyframes": ("SPACETIME_KEYFRAMES", {"tooltip": "Keyframes to add these to (e.g. from Image to "
                                                                 "Video or another Infill Frames)."}),
                "clip_vision": CLIP_VISION,
            },
        }

    RETURN_TYPES = ("SPACETIME_KEYFRAMES",)
    RETURN_NAMES = ("keyframes",)
    FUNCTION = "build"
    CATEGORY = "Spacetime/conditioning"
    DESCRIPTION = ("Infill: keyframes at any frame indices (first + last, every 16th frame, ...); the sampler "
                   f"generates the frames between them: {FRAME_POLICY}; {RESIZE_POLICY}.")

    def build(self, vae, images, frame_indices, length, fps, strength, keyframes=None, clip_vision=None):
        return (Keyframes.from_images(vae, images, parse_indices(frame_indices), strength=strength, base=keyframes,
                                      length=length, clip_vision=clip_vision),)


class SpacetimeSubjectReference:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "vae": ("SPACETIME_VAE", {"tooltip": "The VAE of the model (encodes the references)."}),
                "images": ("IMAGE", {"tooltip": "The subject (a character, an object, a product) on a plain "
                                                "background; each image of the batch is one reference. "
                                                "Centre-cropped to the video's aspect, then resized."}),
            },
            "optional": {
                "keyframes": ("SPACETIME_KEYFRAMES", {"tooltip": "Keyframes to add the references to (from Image to "
                                                                 "Video, Infill Frames or Extend Video)."}),
            },
        }

    RETURN_TYPES = ("SPACETIME_KEYFRAMES",)
    RETURN_NAMES = ("keyframes",)
    FUNCTION = "build"
    CATEGORY = "Spacetime/conditioning"
    DESCRIPTION = ("Wan 2.1 VACE models only: the subject in these images is shown to the model beside every "
                   "window, not as a frame of the video, so it keeps its look across a long video's windows and "
                   "shots. Other models refuse it with a message.")

    def build(self, vae, images, keyframes=None):
        return ((keyframes or Keyframes((), vae)).with_references(images),)


def parse_indices(text: str) -> list[int]:
    """'0, 16,-1' -> [0, 16, -1]."""
    try:
        return [int(part) for part in text.replace(";", ",").split(",") if part.strip()]
    except ValueError as err:
        raise SpacetimeError(f"frame_indices '{text}' is not a comma-separated list of integers; "
                             f"expected e.g. '0,16,32' or '0,-1'") from err
