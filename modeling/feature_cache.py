"""Frozen encoder features computed once per split and encoder: the training input of the frozen-features topic
classifier, cached by `datasets` under a fingerprint of the split and of the encoder's weights."""

import hashlib
import json

import numpy as np
import torch
from datasets import DatasetDict, Features, List, Value

from .modeling_topic_features import TopicFeaturesModel

FEATURES_COLUMN = "features"


def encoder_fingerprint(model: TopicFeaturesModel, max_length: int) -> str:
    """Identifies the features: the encoder's weights and config, pooling and truncation."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(json.dumps([model.config.encoder.to_json_string(), model.config.pooling, max_length]).encode())
    for name, tensor in model.encoder.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def add_encoder_features(splits: DatasetDict, model: TopicFeaturesModel, tokenizer, max_length: int,
                         batch_size: int, text_column: str, label_column: str) -> DatasetDict:
    """`features` (the pooled encoder vector of `text_column`) and `labels` (`label_column`) of every review, computed
    once: `datasets` caches them next to the dataset under a fingerprint of the split and the encoder, and later runs
    read them back."""
    encoder_key = encoder_fingerprint(model, max_length)
    model.eval()

    def encode(batch):
        encoded = tokenizer(batch[text_column], truncation=True, max_length=max_length, return_token_type_ids=False)
        order = np.argsort([len(ids) for ids in encoded["input_ids"]], kind="stable")  # little padding per pass
        vectors = [None] * len(order)
        for start in range(0, len(order), batch_size):
            indices = order[start:start + batch_size]
            padded = tokenizer.pad({key: [encoded[key][i] for i in indices] for key in encoded}, return_tensors="pt")
            pooled = model.encode(padded["input_ids"].to(model.device), padded["attention_mask"].to(model.device))
            for index, vector in zip(indices, pooled.float().cpu().numpy()):
                vectors[index] = vector
        return {FEATURES_COLUMN: vectors, "labels": batch[label_column]}

    feature_schema = Features({FEATURES_COLUMN: List(Value("float32")), "labels": Value("int64")})
    return DatasetDict({
        name: split.map(
            encode, batched=True, batch_size=batch_size * 16, remove_columns=split.column_names,
            features=feature_schema, desc=f"Encoder features ({name})",
            new_fingerprint=hashlib.sha256(f"{split._fingerprint}-{encoder_key}".encode()).hexdigest()[:16],
        )
        for name, split in splits.items()
    })
