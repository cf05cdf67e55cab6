"""Configuration of the frozen-features topic classifier (a frozen encoder's pooled vector -> a small MLP).

This file travels with saved and pushed models through `auto_map`: it imports only transformers and its sibling
encoders file.
"""

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

from .encoders import POOLING_MODES

DEFAULT_HEAD_HIDDEN_SIZES = [256]
# The label of reviews no category holds: data_prep.topic_model.OTHER_LABEL (modeling/ does not import data_prep).
OTHER_TOPIC = "other"


class TopicFeaturesConfig(PreTrainedConfig):
    """A frozen encoder (any BERT-family `AutoModel`) and an MLP head over its pooled output.

    `encoder` holds the encoder's own config. `head_hidden_sizes` lists the MLP's hidden layers (`[]`: a linear
    classifier). The class names are `id2label`, set by the training script from the dataset.
    """

    model_type = "topic-features"
    sub_configs_defaults = {"encoder": SubConfigSpec(config_class=AutoConfig, model_type="distilbert")}

    encoder: PreTrainedConfig | dict | None = None
    pooling: str = "mean"
    head_hidden_sizes: list[int] | None = None
    head_dropout: float = 0.1

    def __post_init__(self, **kwargs):
        if self.head_hidden_sizes is None:
            self.head_hidden_sizes = list(DEFAULT_HEAD_HIDDEN_SIZES)
        super().__post_init__(**kwargs)
        if self.pooling not in POOLING_MODES:
            raise ValueError(f"pooling must be one of {POOLING_MODES}, got {self.pooling!r}")
        if any(size < 1 for size in self.head_hidden_sizes):
            raise ValueError(f"head_hidden_sizes must be positive, got {self.head_hidden_sizes}")
        if not 0 <= self.head_dropout < 1:
            raise ValueError(f"head_dropout must be in [0, 1), got {self.head_dropout}")

    def get_text_config(self, decoder=None, encoder=None) -> PreTrainedConfig:
        """The encoder's config: where `resize_token_embeddings` records a new vocabulary size, so a resized model
        saves and loads again."""
        return self.encoder

    @property
    def feature_size(self) -> int:
        return self.encoder.hidden_size
