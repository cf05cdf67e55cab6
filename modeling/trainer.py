"""`MultiTaskTrainer`: Trainer that logs each task's loss beside the weighted total."""

import torch
from transformers import Trainer


class MultiTaskTrainer(Trainer):
    """Trains a `MultiTaskReviewModel` on w_rating * cross-entropy + w_age * (MSE or Huber on standardized age).

    The weights (and the weighting scheme, fixed or learned uncertainty) are the model's config, set from the command
    line, so a saved model records how it was trained. The loss is a per-batch mean, so Trainer divides it by the
    gradient accumulation steps (`loss_is_scaled_for_ga = False`). The rating and age losses are averaged over the
    logging interval and logged as `rating_loss` / `age_loss` next to `loss`. Both targets are declared as labels
    (`label_names`), so evaluation returns them to `compute_metrics`.

    With uncertainty weighting the learned log-variances get their own optimizer group: learning rate
    `log_variance_learning_rate` and no weight decay (decay would pull them back to equal weights). At an encoder's
    learning rate (~1e-4) they move by about 0.1 over a thousand steps, which leaves the weighting where it started.
    """

    loss_is_scaled_for_ga = False
    TASK_LOSSES = ("rating_loss", "age_loss")
    LABEL_NAMES = ["labels", "age_labels"]

    def __init__(self, *args, log_variance_learning_rate: float | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.log_variance_learning_rate = log_variance_learning_rate
        if self.args.label_names is None:
            self.args.label_names = list(self.LABEL_NAMES)
        self._task_loss_sums = dict.fromkeys(self.TASK_LOSSES, 0.0)
        self._task_loss_steps = 0

    def create_optimizer(self, model=None):
        creating = self.optimizer is None  # an optimizer passed in (or made before) is left as it is
        optimizer = super().create_optimizer(model)
        if not creating or self.log_variance_learning_rate is None:
            return optimizer
        named = dict((model if model is not None else self.model).named_parameters())
        log_variances = next((param for name, param in named.items() if name.endswith("task_log_variances")), None)
        if log_variances is None or not log_variances.requires_grad:
            return optimizer
        for group in optimizer.param_groups:
            group["params"] = [param for param in group["params"] if param is not log_variances]
        optimizer.add_param_group({"params": [log_variances], "lr": self.log_variance_learning_rate, "weight_decay": 0.0})
        return optimizer

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        outputs = model(**inputs)
        if outputs.loss is None:
            raise ValueError(f"The batch has no targets (labels / age_labels); it has {sorted(inputs)}")
        if model.training:
            for name in self.TASK_LOSSES:
                task_loss = getattr(outputs, name)
                if task_loss is not None:
                    self._task_loss_sums[name] += task_loss.detach().item()
            self._task_loss_steps += 1
        return (outputs.loss, outputs) if return_outputs else outputs.loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self._task_loss_steps:
            for name, total in self._task_loss_sums.items():
                logs[name] = round(total / self._task_loss_steps, 4)
            self._task_loss_sums = dict.fromkeys(self.TASK_LOSSES, 0.0)
            self._task_loss_steps = 0
        if (uncertainty := self._learned_log_variances()) is not None:
            logs.update(uncertainty)
        super().log(logs, start_time)

    def _learned_log_variances(self) -> dict[str, float] | None:
        model = self.accelerator.unwrap_model(self.model)
        log_variances = getattr(model, "task_log_variances", None)
        if log_variances is None or not log_variances.requires_grad:
            return None
        with torch.no_grad():
            rating, age = log_variances.detach().float().tolist()
        return {"rating_log_variance": round(rating, 4), "age_log_variance": round(age, 4)}
