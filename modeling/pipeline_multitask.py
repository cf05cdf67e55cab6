"""`review-rating-age` pipeline: review text -> star rating, rating distribution and age in years.

This file travels with saved and pushed models (`custom_pipelines` in the config): it imports only torch,
transformers and its sibling stacking heads file.
"""

import torch
from transformers import Pipeline

from .stacking_heads import StackingHeads, served_by_task, stacking_tasks

PIPELINE_TASK = "review-rating-age"


def model_max_length(tokenizer, model) -> int:
    """The longest input both the tokenizer and the encoder's position embeddings accept."""
    encoder_config = getattr(model.config, "encoder", model.config)
    limits = [tokenizer.model_max_length, getattr(encoder_config, "max_position_embeddings", None)]
    return min(limit for limit in limits if limit is not None and limit > 0)


class ReviewRatingAgePipeline(Pipeline):
    """`pipeline("review-rating-age", model=...)("Great dress!")` ->
    `{"rating": 5, "rating_scores": {"1 star": ..., "5 stars": ...}, "age": 41.3}`. Lists are batched. A model saved
    with stacking heads is served by them for the tasks `config.stacking_heads` lists: TF-IDF of the text beside the
    review vector."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        config = self.model.config
        self.stacking_tasks = stacking_tasks(getattr(config, "stacking_heads", None))  # a bool in older remote code
        self.stacking_heads = StackingHeads.load(config._name_or_path, revision=getattr(config, "_commit_hash", None)
                                                 ) if self.stacking_tasks else None

    def _sanitize_parameters(self, max_length=None, **kwargs):
        if kwargs:
            raise TypeError(f"review-rating-age got unknown argument(s) {sorted(kwargs)}; it takes max_length "
                            "(and the pipeline's own batch_size, num_workers, device)")
        preprocess_params = {"max_length": max_length} if max_length is not None else {}
        return preprocess_params, {}, {}

    def preprocess(self, text, max_length=None):
        if not isinstance(text, str):
            raise TypeError(f"review-rating-age expects review text (str), got {type(text).__name__}")
        limit = model_max_length(self.tokenizer, self.model)
        inputs = self.tokenizer(text, truncation=True, max_length=min(max_length or limit, limit), return_tensors="pt")
        if self.stacking_heads is not None:  # computed here, where the text is; batched as a (1, classes + 1) row
            inputs["lexical_scores"] = torch.tensor(self.stacking_heads.lexical_scores(text)[None])
        return inputs

    def _forward(self, model_inputs):
        outputs = self.model(input_ids=model_inputs["input_ids"], attention_mask=model_inputs["attention_mask"])
        served = (outputs.rating_logits, outputs.age)
        if self.stacking_heads is not None:
            scores = model_inputs["lexical_scores"].double() + torch.from_numpy(
                self.stacking_heads.vector_scores(outputs.review_vector.float().cpu().numpy())).to(outputs.age.device)
            served = served_by_task(self.stacking_tasks, served, (scores[:, :-1], scores[:, -1]))
        return dict(zip(("rating_logits", "age"), served))

    def postprocess(self, model_outputs):
        logits = model_outputs["rating_logits"][0].float()
        probabilities = torch.softmax(logits, dim=-1)
        id2label = self.model.config.id2label
        # The decision rule: per-class logit offsets fitted on validation (logit adjustment), when the config has
        # them; `rating_scores` stay the model's own probabilities.
        offsets = getattr(self.model.config, "rating_logit_offsets", None)
        best = int((logits + torch.tensor(offsets) if offsets else logits).argmax())
        return {
            "rating": best + 1,
            "rating_scores": {id2label[index]: float(p) for index, p in enumerate(probabilities)},
            "age": round(float(model_outputs["age"][0]), 1),
        }
