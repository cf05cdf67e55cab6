"""Pooling token vectors into one review vector. Travels with saved models (imported relatively by the modeling
files): it imports only torch."""

import torch

POOLING_MODES = ("mean", "cls")


def pool_hidden_states(hidden_states: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """[CLS] vector, or the mean of the non-padding token vectors."""
    if pooling == "cls":
        return hidden_states[:, 0]
    mask = attention_mask.unsqueeze(-1).to(hidden_states.dtype)
    return (hidden_states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
