"""Which GANs are the study's and which are medgan's additions, and how tables and figures name them.

The study compared the progressive GAN and the label-projection GAN (cpd);
StyleGAN2-ADA is medgan's extension. Study sweeps run the study's two by
default, and every report labels an extension as such, so that no number of
medgan's own model is read as one of the study's. Kept free of jax so the
aggregation of results runs anywhere.
"""

STUDY_MODELS = ("pggan", "cpd")
EXTENSION_MODELS = ("stylegan2",)
DEFAULT_MODELS = "+".join(STUDY_MODELS)  # the `models` sweep argument's default


def model_label(model: str) -> str:
    """A GAN's name as tables and figures show it: "stylegan2 (medgan extension)"."""
    return f"{model} (medgan extension)" if model in EXTENSION_MODELS else model
