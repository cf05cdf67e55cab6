"""What both models share around their encoder: pooling token vectors into one review vector, and starting a new
model from a pretrained encoder. Travels with saved models (imported relatively by the configuration and modeling
files): it imports only torch and transformers."""

import torch
from transformers import AutoModel

POOLING_MODES = ("mean", "cls")


def pool_hidden_states(hidden_states: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """[CLS] vector, or the mean of the non-padding token vectors."""
    if pooling == "cls":
        return hidden_states[:, 0]
    mask = attention_mask.unsqueeze(-1).to(hidden_states.dtype)
    return (hidden_states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


def repeated_layer_classes(encoder: torch.nn.Module) -> set[str]:
    """The class name of the encoder's repeated blocks (the modules of its first `ModuleList`): what FSDP wraps one by
    one and `device_map` keeps whole. BERT declares them in `_no_split_modules`; DistilBERT declares none."""
    for module in encoder.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) > 0:
            return {type(module[0]).__name__}
    return set()


class PretrainedEncoderMixin:
    """The `PreTrainedModel` contract for a model whose config holds its encoder's config in `encoder` and whose
    module is `encoder`: activation checkpointing, input embeddings (so `resize_token_embeddings` works), the attention
    implementations the encoder supports (the encoder itself refuses one it lacks), and `from_encoder`."""

    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True

    def declare_encoder_layers(self) -> None:
        """After `post_init` (which takes the encoder's `_no_split_modules`): add its repeated block class, so that
        FSDP's transformer-based auto wrap (`examples/accelerate/fsdp.yaml`) finds layers to shard with any encoder."""
        self._no_split_modules = set(self._no_split_modules or ()) | repeated_layer_classes(self.encoder)

    def get_input_embeddings(self):
        return self.encoder.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.encoder.set_input_embeddings(value)

    @classmethod
    def from_encoder(cls, encoder_name_or_path: str, attn_implementation: str | None = None, dtype=None,
                     **config_kwargs):
        """A new model whose encoder starts from pretrained weights and whose heads are freshly initialized."""
        encoder = AutoModel.from_pretrained(encoder_name_or_path, attn_implementation=attn_implementation)
        config = cls.config_class(encoder=encoder.config.to_dict(), **config_kwargs)
        config._attn_implementation = encoder.config._attn_implementation
        model = cls(config)
        model.encoder.load_state_dict(encoder.state_dict())
        return model.to(dtype) if dtype is not None else model

