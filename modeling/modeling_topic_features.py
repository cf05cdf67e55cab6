"""The frozen-features topic classifier: a frozen encoder's [CLS] or mean-pooled vector, standardized, through an MLP.

One folder holds encoder and head, so `pipeline("text-classification", model=folder)` and
`AutoModelForSequenceClassification.from_pretrained(folder)` use it like a fine-tuned classifier. Training passes
precomputed `features` instead of tokens, so the encoder runs once per review and never backward.

This file travels with saved and pushed models through `auto_map`: it imports only torch, transformers and its
sibling configuration and encoders files.
"""

import torch
from torch import nn
from torch.nn import functional as F
from transformers import AutoModel, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

from .configuration_topic_features import TopicFeaturesConfig
from .encoders import PretrainedEncoderMixin, pool_hidden_states


class TopicFeaturesHead(nn.Module):
    """Standardize the pooled features (train-split mean and std, stored as buffers), then Linear-GELU-Dropout
    blocks and a final Linear to the class logits."""

    def __init__(self, config: TopicFeaturesConfig):
        super().__init__()
        self.register_buffer("feature_mean", torch.zeros(config.feature_size))
        self.register_buffer("feature_std", torch.ones(config.feature_size))
        layers, in_size = [], config.feature_size
        for hidden_size in config.head_hidden_sizes:
            layers += [nn.Linear(in_size, hidden_size), nn.GELU(), nn.Dropout(config.head_dropout)]
            in_size = hidden_size
        layers.append(nn.Linear(in_size, config.num_labels))
        self.mlp = nn.Sequential(*layers)

    def set_feature_statistics(self, features: torch.Tensor) -> None:
        """Mean and std per dimension from training features; constant dimensions get std 1."""
        features = features.to(self.feature_mean.device, torch.float32)
        std = features.std(dim=0)
        self.feature_mean.copy_(features.mean(dim=0))
        self.feature_std.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        standardized = (features.to(self.feature_mean.dtype) - self.feature_mean) / self.feature_std
        return self.mlp(standardized)


class TopicFeaturesModel(PretrainedEncoderMixin, PreTrainedModel):
    config_class = TopicFeaturesConfig
    base_model_prefix = "topic_features"
    main_input_name = "input_ids"

    def __init__(self, config: TopicFeaturesConfig):
        super().__init__(config)
        self.encoder = AutoModel.from_config(config.encoder)
        self.encoder.requires_grad_(False)
        self.head = TopicFeaturesHead(config)
        self.post_init()
        self.declare_encoder_layers()

    def _init_weights(self, module):
        if isinstance(module, TopicFeaturesHead):
            with torch.no_grad():
                module.feature_mean.zero_()
                module.feature_std.fill_(1.0)
            return
        super()._init_weights(module)

    def train(self, mode: bool = True):
        """The encoder stays in eval mode (no dropout): it is frozen, and cached features come from eval mode too."""
        super().train(mode)
        self.encoder.eval()
        return self

    @torch.no_grad()
    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The pooled encoder vector of each text: what the head reads, and what training caches."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        hidden_states = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return pool_hidden_states(hidden_states, attention_mask, self.config.pooling)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        features: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> SequenceClassifierOutput:
        r"""
        features (`torch.FloatTensor` of shape `(batch_size, hidden_size)`): pooled encoder vectors from `encode`;
            given instead of `input_ids`, the encoder is skipped (training on cached features).
        labels (`torch.LongTensor` of shape `(batch_size,)`): class ids.

        `token_type_ids` is accepted so BERT tokenizers' output can be passed as is; reviews are single segments.
        """
        if features is None:
            if input_ids is None:
                raise ValueError("Pass input_ids (and attention_mask) or precomputed features")
            features = self.encode(input_ids, attention_mask)
        logits = self.head(features)
        loss = F.cross_entropy(logits.float(), labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)
