"""Model classes, the multi-task Trainer, metrics and model cards. `import modeling` registers the custom
configs and models with the Auto classes and the `review-rating-age` pipeline task (where torch is installed; without
it only the ONNX serving modules work: `modeling.serving`, `modeling.backends`)."""

from transformers.utils import is_torch_available

if is_torch_available():  # a torch-free Space (python -m modeling.space --without_torch) serves ONNX only
    from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, pipeline
    from transformers.pipelines import PIPELINE_REGISTRY

    from .configuration_multitask import RATING_NAMES, MultiTaskReviewConfig
    from .configuration_topic_features import TopicFeaturesConfig
    from .modeling_multitask import MultiTaskReviewModel, MultiTaskReviewOutput
    from .modeling_topic_features import TopicFeaturesModel
    from .pipeline_multitask import PIPELINE_TASK as MULTITASK_TASK
    from .pipeline_multitask import ReviewRatingAgePipeline

    AutoConfig.register(MultiTaskReviewConfig.model_type, MultiTaskReviewConfig)
    AutoModel.register(MultiTaskReviewConfig, MultiTaskReviewModel)
    MultiTaskReviewConfig.register_for_auto_class()
    MultiTaskReviewModel.register_for_auto_class("AutoModel")
    AutoConfig.register(TopicFeaturesConfig.model_type, TopicFeaturesConfig)
    AutoModelForSequenceClassification.register(TopicFeaturesConfig, TopicFeaturesModel)
    TopicFeaturesConfig.register_for_auto_class()
    TopicFeaturesModel.register_for_auto_class("AutoModelForSequenceClassification")
    PIPELINE_REGISTRY.register_pipeline(
        MULTITASK_TASK, pipeline_class=ReviewRatingAgePipeline, pt_model=AutoModel, type="text"
    )

    def load_rating_age_pipeline(model, revision: str | None = None, **kwargs):
        """The `review-rating-age` pipeline on a folder, a Hub repo id or a loaded model, run by this project's code.

        Saved folders name their pipeline in `custom_pipelines`, and for such a folder `transformers.pipeline` insists
        on `trust_remote_code=True` unless it is handed the class; this hands it the class. Without the project:
        `pipeline(model=repo_id, trust_remote_code=True)`."""
        return pipeline(MULTITASK_TASK, model=model, revision=revision, pipeline_class=ReviewRatingAgePipeline,
                        **kwargs)


__all__ = [
    "MULTITASK_TASK",
    "RATING_NAMES",
    "MultiTaskReviewConfig",
    "MultiTaskReviewModel",
    "MultiTaskReviewOutput",
    "ReviewRatingAgePipeline",
    "TopicFeaturesConfig",
    "TopicFeaturesModel",
    "load_rating_age_pipeline",
] if is_torch_available() else []
