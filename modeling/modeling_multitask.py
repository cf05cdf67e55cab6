"""The multi-task review model: one encoder, a star-rating head and an age head.

This file travels with saved and pushed models through `auto_map`: it imports only torch, transformers and
its sibling configuration, encoders and pipeline files (so a saved folder carries the pipeline its config names).
"""

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from transformers import AutoModel, PreTrainedModel
from transformers.utils import ModelOutput

from .configuration_multitask import MultiTaskReviewConfig
from .encoders import PretrainedEncoderMixin, pool_hidden_states
from .pipeline_multitask import PIPELINE_TASK, ReviewRatingAgePipeline


@dataclass
class MultiTaskReviewOutput(ModelOutput):
    """`age` is in years. `rating_loss` and `age_loss` are the unweighted task losses (for logging). `review_vector`
    is the pooled encoder output the heads read (the stacking heads read it too)."""

    loss: torch.FloatTensor | None = None
    rating_logits: torch.FloatTensor | None = None
    age: torch.FloatTensor | None = None
    rating_loss: torch.FloatTensor | None = None
    age_loss: torch.FloatTensor | None = None
    review_vector: torch.FloatTensor | None = None


class MultiTaskReviewModel(PretrainedEncoderMixin, PreTrainedModel):
    config_class = MultiTaskReviewConfig
    base_model_prefix = "multitask"
    main_input_name = "input_ids"

    def __init__(self, config: MultiTaskReviewConfig):
        super().__init__(config)
        self.encoder = AutoModel.from_config(config.encoder)
        hidden_size = config.encoder.hidden_size
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.rating_head = nn.Linear(hidden_size, config.num_labels)
        self.age_head = nn.Linear(hidden_size, 1)
        # Kendall et al. (2018) log-variances s = log(sigma^2), learned only with loss_weighting="uncertainty".
        self.task_log_variances = nn.Parameter(
            torch.zeros(2), requires_grad=config.loss_weighting == "uncertainty"
        )
        class_weights = config.rating_class_weights
        self.register_buffer(
            "rating_class_weights",
            torch.tensor(class_weights, dtype=torch.float) if class_weights is not None else None,
            persistent=False,
        )
        # Every save (Trainer checkpoints and save_model included) names the pipeline, as Pipeline.save_pretrained would.
        config.custom_pipelines = {
            PIPELINE_TASK: {"impl": f"pipeline_multitask.{ReviewRatingAgePipeline.__name__}", "pt": ["AutoModel"],
                            "tf": [], "type": "text"}
        }
        self.post_init()
        self.declare_encoder_layers()

    def _init_weights(self, module):
        if module is self:
            with torch.no_grad():
                self.task_log_variances.zero_()
            return
        super()._init_weights(module)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        age_labels: torch.Tensor | None = None,
    ) -> MultiTaskReviewOutput:
        r"""
        labels (`torch.LongTensor` of shape `(batch_size,)`): rating class ids (0 = 1 star ... 4 = 5 stars).
        age_labels (`torch.FloatTensor` of shape `(batch_size,)`): reviewer age in years.

        `token_type_ids` is accepted so BERT tokenizers' output can be passed as is; reviews are single segments,
        so it is all zeros and not needed (DistilBERT has no segment embeddings at all).
        """
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        hidden_states = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        review_vector = pool_hidden_states(hidden_states, attention_mask, self.config.pooling)
        pooled = self.dropout(review_vector)
        rating_logits = self.rating_head(pooled)
        # In float32 even under bf16 autocast: bf16 years near 40 come in steps of 0.25.
        with torch.autocast(device_type=pooled.device.type, enabled=False):
            age_standardized = self.age_head(pooled.float().to(self.age_head.weight.dtype)).float().squeeze(-1)
        age = age_standardized * self.config.age_std + self.config.age_mean

        rating_loss = age_loss = loss = None
        if labels is not None:
            rating_loss = F.cross_entropy(rating_logits.float(), labels, weight=self.rating_class_weights)
        if age_labels is not None:
            target = (age_labels.float() - self.config.age_mean) / self.config.age_std
            if self.config.age_loss == "huber":
                age_loss = F.huber_loss(age_standardized, target, delta=self.config.huber_delta)
            elif self.config.age_loss == "l1":
                age_loss = F.l1_loss(age_standardized, target)
            else:
                age_loss = F.mse_loss(age_standardized, target)
        if rating_loss is not None or age_loss is not None:
            loss = self.weight_task_losses(rating_loss, age_loss)
        return MultiTaskReviewOutput(
            loss=loss, rating_logits=rating_logits, age=age, rating_loss=rating_loss, age_loss=age_loss,
            review_vector=review_vector,
        )

    def weight_task_losses(self, rating_loss: torch.Tensor | None, age_loss: torch.Tensor | None) -> torch.Tensor:
        r"""Combine the task losses; a task whose target is missing or whose weight is 0 adds nothing.

        fixed:       L = w_r * L_CE + w_a * L_age
        uncertainty: L = w_r * (exp(-s_r) * L_CE + s_r / 2) + w_a * (exp(-s_a) * L_age / 2 + s_a / 2),
                     with s = log(sigma^2) learned per task (Kendall, Gal & Cipolla, CVPR 2018: a classification
                     likelihood scaled by 1/sigma^2, a Gaussian regression likelihood by 1/(2 sigma^2), plus log sigma).
        """
        weights = (self.config.rating_loss_weight, self.config.age_loss_weight)
        scales = (1.0, 0.5)  # Kendall et al.: 1/sigma^2 for classification, 1/(2 sigma^2) for regression
        total = None
        for index, (task_loss, weight) in enumerate(zip((rating_loss, age_loss), weights)):
            if task_loss is None or weight == 0:
                continue
            if self.config.loss_weighting == "uncertainty":
                log_variance = self.task_log_variances[index]
                task_loss = scales[index] * torch.exp(-log_variance) * task_loss + 0.5 * log_variance
            term = weight * task_loss
            total = term if total is None else total + term
        if total is None:  # every task with a target is switched off: a zero that still has a graph
            total = 0.0 * (rating_loss if rating_loss is not None else age_loss)
        return total
