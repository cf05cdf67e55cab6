"""Trainers: `ReviewTrainer` evaluates and predicts in dataset order; `MultiTaskTrainer` logs each task's loss beside
the weighted total."""

import torch
from torch.utils.data import SequentialSampler
from transformers import Trainer


class ReviewTrainer(Trainer):
    """`Trainer` whose evaluation and prediction keep the dataset's order.

    In transformers 5, `train_sampling_strategy="group_by_length"` (our default, for training speed) also reorders
    evaluation and prediction, so `predict(ds).predictions[i]` would not belong to `ds[i]`. Here evaluation is
    sequential on one process and, under DDP, left to accelerate's usual contiguous sharding, which the gathered
    predictions undo."""

    def _get_eval_sampler(self, eval_dataset):
        if eval_dataset is None or not hasattr(eval_dataset, "__len__"):
            return None
        return SequentialSampler(eval_dataset) if self.args.world_size <= 1 else None


class MultiTaskTrainer(ReviewTrainer):
    """Trains a `MultiTaskReviewModel` on w_rating * cross-entropy + w_age * (MSE or Huber on standardized age).

    The weights (and the weighting scheme, fixed or learned uncertainty) are the model's config, set from the command
    line, so a saved model records how it was trained. The loss is a per-batch mean, so Trainer divides it by the
    gradient accumulation steps (`loss_is_scaled_for_ga = False`). Both targets are declared as labels
    (`label_names`), so evaluation returns them to `compute_metrics`.

    `rating_loss` / `age_loss` are logged next to `loss` and describe the same batches: summed on the device per
    micro-batch (no sync per step), then at each logging step averaged over the micro-batches and over the processes,
    as Trainer does for `loss`.

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
        # [rating sum, age sum, rating micro-batches, age micro-batches], kept on the model's device
        self._task_loss_sums: torch.Tensor | None = None

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
            self._add_task_losses(outputs)
        return (outputs.loss, outputs) if return_outputs else outputs.loss

    def _add_task_losses(self, outputs) -> None:
        zero = outputs.loss.new_zeros((), dtype=torch.float32)
        task_losses = [getattr(outputs, name) for name in self.TASK_LOSSES]
        step = torch.stack([zero if loss is None else loss.detach().float() for loss in task_losses]
                           + [zero + (loss is not None) for loss in task_losses])
        self._task_loss_sums = step if self._task_loss_sums is None else self._task_loss_sums + step

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self._task_loss_sums is not None:
            # Every process reaches this logging step, so the all-reduce below is matched on each rank.
            totals = self.accelerator.reduce(self._task_loss_sums, reduction="sum").tolist()
            count = len(self.TASK_LOSSES)
            for name, total, batches in zip(self.TASK_LOSSES, totals[:count], totals[count:]):
                if batches:
                    logs[name] = round(total / batches, 4)
            self._task_loss_sums = None
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
