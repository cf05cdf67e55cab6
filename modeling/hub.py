"""Pushing a saved model folder to the Hub and naming what to pull back: `user/repo`, `user/repo@revision` or a
local folder. The training scripts check the push arguments before training, so a missing token or a malformed
repo id fails in seconds, not after an hour of training."""

import os
from pathlib import Path

from huggingface_hub import CommitInfo, HfApi, get_token
from huggingface_hub.utils import HFValidationError, validate_repo_id

# Not part of the published model: Trainer checkpoints, TensorBoard logs, the pickled TrainingArguments (the card
# lists the hyper-parameters) and prediction CSVs, which hold review text from the data set.
PUSH_IGNORE_PATTERNS = ["checkpoint-*/", "runs/", "training_args.bin", "*predictions*.csv"]
REVISION_SEPARATOR = "@"

# Where the project publishes: the README's publish commands push to these ids, the app serves the two models by
# default, and the Space folder names them in its metadata (modeling/space.py).
PROJECT_NAMESPACE = "review-transfer"
PUBLISHED_MULTITASK_MODEL = f"{PROJECT_NAMESPACE}/clothing-rating-age"
PUBLISHED_TOPIC_MODEL = f"{PROJECT_NAMESPACE}/amazon-topic-classifier"
PUBLISHED_TOPIC_DATASET = f"{PROJECT_NAMESPACE}/amazon-review-topics"
PUBLISHED_SPACE = f"{PROJECT_NAMESPACE}/review-demo"


def check_push_arguments(push_to_hub: bool, hub_model_id: str | None, hub_token: str | None) -> None:
    """Raise a ValueError naming the fix when `--push_to_hub` cannot work: no repo id, a malformed one, no token.

    Checked locally (no network): the token is `--hub_token`, `HF_TOKEN` or the one `hf auth login` saved."""
    if not push_to_hub:
        return
    if not hub_model_id:
        raise ValueError("--push_to_hub needs --hub_model_id <user or organization>/<model name>, e.g. me/review-model")
    if hub_model_id.count("/") != 1:
        raise ValueError(
            f"--hub_model_id {hub_model_id!r} is not a Hub model id: expected <user or organization>/<model name>, "
            "e.g. me/review-model"
        )
    try:
        validate_repo_id(hub_model_id)
    except HFValidationError as error:
        raise ValueError(f"--hub_model_id {hub_model_id!r} is not a valid Hub model id: {error}") from error
    if not (hub_token or get_token()):
        raise ValueError(
            "--push_to_hub needs a Hugging Face token with write access: pass --hub_token, set HF_TOKEN, "
            "or run `hf auth login` before training"
        )


def push_model_folder(
    folder: str | os.PathLike,
    repo_id: str,
    revision: str | None = None,
    commit_message: str = "Upload model",
    token: str | None = None,
    private: bool | None = None,
    ignore_patterns: list[str] | None = None,
) -> CommitInfo:
    """Create the model repo if needed and upload `folder` as one commit, leaving out `PUSH_IGNORE_PATTERNS`
    (checkpoints, TensorBoard runs, ...) and `ignore_patterns`. A `revision` other than main is a branch, created
    from main if missing.

    Returns the commit; `commit_info.oid` is the sha to pull this exact version with `repo_id@sha`. The Hub
    endpoint is `HF_ENDPOINT` as `huggingface_hub` read it at import."""
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder} is not a saved model folder (no config.json)")
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    if revision is not None and revision != "main":
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    return api.upload_folder(
        repo_id=repo_id,
        folder_path=folder,
        repo_type="model",
        revision=revision,
        commit_message=commit_message,
        ignore_patterns=PUSH_IGNORE_PATTERNS + list(ignore_patterns or []),
    )


def parse_model_reference(reference: str) -> tuple[str, str | None]:
    """`"user/repo@rev"` -> ("user/repo", "rev"); `"user/repo"` -> ("user/repo", None); an existing local folder is
    returned as is with revision None (a folder name may contain "@"). A path that looks local but does not exist is
    a FileNotFoundError; anything else that is not a Hub id, a ValueError."""
    reference = reference.strip()
    if not reference:
        raise ValueError("empty model reference: give a local folder or a Hub repo id (optionally repo_id@revision)")
    if os.path.isdir(os.path.expanduser(reference)):
        return os.path.expanduser(reference), None
    repo_id, separator, revision = reference.partition(REVISION_SEPARATOR)
    if separator and not revision:
        raise ValueError(
            f"{reference!r}: nothing after {REVISION_SEPARATOR!r}; expected <repo id>@<branch, tag or commit>"
        )
    if repo_id.startswith((".", "/", "~")) or "\\" in repo_id:
        raise FileNotFoundError(f"no model folder at {repo_id!r}")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise ValueError(
            f"{reference!r} is neither a local folder nor a Hub model id (<user>/<model>[@<revision>]): {error}"
        ) from error
    return repo_id, revision or None
