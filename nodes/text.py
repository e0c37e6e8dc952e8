"""Text Encode: a prompt (or a schedule of shots) and a negative prompt -> the sampler's text conditioning."""
from ..embedded import recaption as world_captions
from ..sampler import TextConditioning


class SpacetimeTextEncode:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "text_encoder": ("SPACETIME_TEXT_ENCODER", {"tooltip": "From Spacetime Load Text Encoder."}),
            "prompt": ("STRING", {"multiline": True, "default": "", "tooltip":
                "What the video shows. One prompt, or one shot per line as '<start seconds>: prompt' "
                "(e.g. '0: a red circle moves right' and '4: a blue square grows'); each window of a long video "
                "uses the shot that covers it."}),
            "negative_prompt": ("STRING", {"multiline": True, "default": "", "tooltip":
                "What to steer away from (used when cfg > 1). May be empty."}),
        }, "optional": {
            "recaption": ("BOOLEAN", {"default": True, "tooltip":
                "spacetime-mini only: rewrite each prompt into the caption wording the model was trained on "
                "('A red ball moves right across blue' -> 'a red circle moving to the right on a blue "
                "background'), as Sora rewrites prompts. The Sampler's info shows the rewrite. Wan's text "
                "encoder reads English as typed, so this does nothing there."}),
        }}

    RETURN_TYPES = ("SPACETIME_CONDITIONING",)
    RETURN_NAMES = ("conditioning",)
    FUNCTION = "encode"
    CATEGORY = "Spacetime/conditioning"
    DESCRIPTION = ("Encodes the prompt (or a shot list, one '<start seconds>: prompt' per line) and the negative "
                   "prompt with the UMT5 text encoder into the conditioning the Spacetime Sampler takes.")

    def encode(self, text_encoder, prompt, negative_prompt, recaption=True):
        reads_world_captions = text_encoder.caption_language == world_captions.LANGUAGE
        rewrite = world_captions.recaption if recaption and reads_world_captions else None
        return (TextConditioning.encode(text_encoder, prompt, negative_prompt, recaption=rewrite),)
