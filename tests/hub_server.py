"""A loopback stand-in for the Hugging Face Hub: the HTTP endpoints `huggingface_hub` 2.x calls to create a repo,
upload a folder (preupload + NDJSON commit, files inline as base64; parquet files through the LFS batch API, as
`datasets`' push_to_hub needs) and download files (revision info, tree listing, HEAD/GET `resolve`). Repos live in memory, one snapshot of all files per commit, so a pull by branch
name or by commit sha sees exactly what was pushed then.

Point the client at it with `HF_ENDPOINT=<url>` and `HF_HUB_DISABLE_XET=1` (read when `huggingface_hub` is
imported: set them before starting a Python process, or see `tests/hub_fixtures.py` for an already-imported client).
Payloads follow `huggingface_hub/hf_api.py`, `_commit_api.py` and `file_download.py`.
"""

import base64
import hashlib
import json
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
REPO_ACTIONS = ("preupload", "commit", "revision", "tree", "branch")
# Uploaded through LFS (batch, PUT, then an lfsFile commit line): datasets' push_to_hub deletes its parquet shards
# once they are uploaded, so they cannot go inline in the commit.
LFS_SUFFIXES = (".parquet",)
DEFAULT_BRANCH = "main"
# A new Hub repo starts with one commit holding .gitattributes (abridged here).
INITIAL_GITATTRIBUTES = (
    b"*.bin filter=lfs diff=lfs merge=lfs -text\n"
    b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
)


def git_blob_sha1(content: bytes) -> str:
    """The git object id of a file, which the Hub uses as the ETag of a regular (non-LFS) file."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def read_front_matter(readme: bytes | None) -> dict:
    """The YAML metadata block at the top of a README.md ({} when there is none)."""
    if not readme:
        return {}
    text = readme.decode("utf-8")
    if not text.startswith("---"):
        return {}
    block = text.split("---", 2)
    metadata = yaml.safe_load(block[1]) if len(block) == 3 else None
    if not isinstance(metadata, dict):
        raise ValueError("README.md metadata must be a YAML mapping")
    return metadata


@dataclass
class HubCommit:
    sha: str
    message: str
    parent: str | None
    files: dict[str, bytes]
    created_at: datetime


@dataclass
class HubRepo:
    repo_id: str
    repo_type: str
    commits: dict[str, HubCommit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    created_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    def resolve(self, revision: str) -> HubCommit | None:
        """A branch name or a full commit sha -> the commit (None when unknown)."""
        sha = self.branches.get(revision, revision)
        return self.commits.get(sha)


class HubError(Exception):
    """An error answer the way the Hub gives it: status, `X-Error-Code` header and a JSON `error` message."""

    def __init__(
        self, status: int, message: str, error_code: str | None = None, commit: str | None = None, **body_fields
    ):
        super().__init__(message)
        self.status, self.message, self.error_code, self.commit = status, message, error_code, commit
        self.body_fields = body_fields


class LoopbackHub:
    """The in-memory Hub and its HTTP server on 127.0.0.1 (a free port), served from a background thread.

    `with LoopbackHub() as hub: ... hub.url ...`. `hub.requests` records (method, path, status) of every request.
    Write endpoints require an `Authorization: Bearer ...` header; reads are public."""

    def __init__(self, user: str = "loopback-user"):
        self.user = user
        self.repos: dict[tuple[str, str], HubRepo] = {}
        self.requests: list[tuple[str, str, int]] = []
        self.lfs_objects: dict[str, bytes] = {}  # sha256 -> content, uploaded before the commit that names it
        self._lock = threading.Lock()
        self._commit_counter = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("The loopback Hub is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "LoopbackHub":
        handler = type("BoundHubRequestHandler", (HubRequestHandler,), {"hub": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="loopback-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = self._thread = None

    def __enter__(self) -> "LoopbackHub":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # ---- repository state (called by the handler, under the lock) ------------------------------------------

    def get_repo(self, repo_type: str, repo_id: str) -> HubRepo:
        repo = self.repos.get((repo_type, repo_id))
        if repo is None:
            raise HubError(404, f"Repository not found: {repo_type} {repo_id}", "RepoNotFound")
        return repo

    def get_commit(self, repo: HubRepo, revision: str) -> HubCommit:
        commit = repo.resolve(revision)
        if commit is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return commit

    def create_repo(self, repo_type: str, repo_id: str) -> HubRepo:
        repo = HubRepo(repo_id=repo_id, repo_type=repo_type)
        self.repos[(repo_type, repo_id)] = repo
        self.add_commit(repo, DEFAULT_BRANCH, "initial commit", {".gitattributes": INITIAL_GITATTRIBUTES})
        return repo

    def add_commit(self, repo: HubRepo, branch: str, message: str, files: dict[str, bytes]) -> HubCommit:
        self._commit_counter += 1
        parent = repo.branches.get(branch)
        digest = hashlib.sha1(f"{repo.repo_id}\0{parent}\0{message}\0{self._commit_counter}".encode())
        for path in sorted(files):
            digest.update(f"\0{path}\0{git_blob_sha1(files[path])}".encode())
        commit = HubCommit(digest.hexdigest(), message, parent, files, datetime.now(timezone.utc))
        repo.commits[commit.sha] = commit
        repo.branches[branch] = commit.sha
        return commit


def split_repo_path(segments: list[str]) -> tuple[str, str, list[str]]:
    """`["user", "repo", "commit", "main"]` -> ("user/repo", "commit", ["main"]); ids may have no namespace."""
    for id_length in (2, 1):
        if len(segments) > id_length and segments[id_length] in REPO_ACTIONS:
            return "/".join(segments[:id_length]), segments[id_length], segments[id_length + 1:]
    return "/".join(segments), "", []


class HubRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as httpx expects; every answer carries Content-Length
    hub: LoopbackHub
    method: str
    query: dict[str, list[str]]

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass

    # ---- dispatch --------------------------------------------------------------------------------------------

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        self.query = parse_qs(url.query)
        segments = [unquote(part) for part in url.path.strip("/").split("/")]
        self.method = method
        body = self._read_body() if method in ("POST", "PUT") else b""
        try:
            with self.hub._lock:
                if method == "PUT" and segments[0] == "lfs-upload":
                    self._lfs_upload(segments[1], body)
                elif method == "POST" and segments[-4:] == ["info", "lfs", "objects", "batch"]:
                    self._lfs_batch(json.loads(body))
                elif segments[0] == "api":
                    self._api(method, segments[1:], body)
                else:
                    self._resolve(method, segments)
        except HubError as error:
            self._send_error(method, error)
        except (ValueError, KeyError, TypeError) as error:  # malformed request body
            self._send_error(method, HubError(400, f"Bad request: {error!r}"))
        except Exception as error:  # a bug here: answer it instead of dropping the connection
            self._send_error(method, HubError(500, f"Loopback Hub error: {error!r}"))

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while (size := int(self.rfile.readline().strip() or b"0", 16)) > 0:
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _api(self, method: str, segments: list[str], body: bytes) -> None:
        if method == "POST" and segments == ["repos", "create"]:
            return self._create_repo(json.loads(body))
        if method == "POST" and segments == ["validate-yaml"]:
            return self._validate_yaml(json.loads(body))
        if not segments or segments[0] not in REPO_TYPES:
            raise HubError(404, f"No such endpoint: {method} /api/{'/'.join(segments)}")
        repo_type = REPO_TYPES[segments[0]]
        repo_id, action, rest = split_repo_path(segments[1:])
        revision = rest[0] if rest else DEFAULT_BRANCH
        if method == "POST" and action in ("preupload", "commit", "branch"):
            self._require_token()
            repo = self.hub.get_repo(repo_type, repo_id)
            if action == "preupload":
                return self._preupload(repo, revision, json.loads(body))
            if action == "commit":
                return self._commit(repo, revision, body)
            return self._create_branch(repo, revision, json.loads(body) if body else {})
        if method == "GET" and action in ("", "revision"):
            return self._repo_info(self.hub.get_repo(repo_type, repo_id), revision)
        if method == "GET" and action == "tree":
            return self._tree(self.hub.get_repo(repo_type, repo_id), revision, "/".join(rest[1:]))
        raise HubError(404, f"No such endpoint: {method} /api/{'/'.join(segments)}")

    # ---- endpoints -------------------------------------------------------------------------------------------

    def _require_token(self) -> None:
        if not self.headers.get("Authorization", "").startswith("Bearer "):
            raise HubError(401, "Invalid credentials in Authorization header")

    def _repo_url(self, repo: HubRepo) -> str:
        prefix = "" if repo.repo_type == "model" else f"{repo.repo_type}s/"
        return f"{self.hub.url}/{prefix}{repo.repo_id}"

    def _create_repo(self, payload: dict) -> None:
        self._require_token()
        repo_type = payload.get("type") or "model"
        if repo_type not in REPO_TYPES.values():
            raise HubError(400, f"Invalid repo type {repo_type!r}")
        namespace = payload.get("organization") or self.hub.user
        repo_id = f"{namespace}/{payload['name']}"
        if (repo_type, repo_id) in self.hub.repos:  # the Hub's 409 names the repo's URL; create_repo(exist_ok) reads it
            existing = self.hub.get_repo(repo_type, repo_id)
            raise HubError(409, f"You already created this {repo_type} repo", url=self._repo_url(existing))
        repo = self.hub.create_repo(repo_type, repo_id)
        self._send_json({"url": self._repo_url(repo), "name": repo_id, "id": repo_id})

    def _validate_yaml(self, payload: dict) -> None:
        """The Hub checks README.md metadata before a commit; here: valid YAML and a mapping."""
        try:
            read_front_matter(payload["content"].encode("utf-8"))
        except (yaml.YAMLError, ValueError) as error:
            self._send_json({"errors": [{"message": str(error)}], "warnings": []}, status=400)
            return
        self._send_json({"errors": [], "warnings": []})

    def _preupload(self, repo: HubRepo, revision: str, payload: dict) -> None:
        """Files go inline in the commit ("regular") but parquet ("lfs"); `oid` lets the client skip unchanged files."""
        commit = self.hub.get_commit(repo, revision)
        files = []
        for entry in payload["files"]:
            existing = commit.files.get(entry["path"])
            files.append({
                "path": entry["path"],
                "uploadMode": "lfs" if entry["path"].endswith(LFS_SUFFIXES) else "regular",
                "shouldIgnore": False,
                "oid": git_blob_sha1(existing) if existing is not None else None,
            })
        self._send_json({"files": files, "commitOid": commit.sha})

    def _commit(self, repo: HubRepo, branch: str, body: bytes) -> None:
        if "create_pr" in self.query:
            raise HubError(400, "Pull requests are not supported by the loopback Hub")
        if branch not in repo.branches:
            raise HubError(404, f"Invalid rev id: {branch} (commits go to a branch)", "RevisionNotFound")
        head = repo.commits[repo.branches[branch]]
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "The commit payload must start with a header line")
        header = lines[0]["value"]
        if header.get("parentCommit") not in (None, head.sha):
            raise HubError(412, f"Parent commit {header['parentCommit']} is not the head of {branch} ({head.sha})")
        files = dict(head.files)
        for line in lines[1:]:
            key, value = line["key"], line["value"]
            if key == "file":
                if value.get("encoding") != "base64":
                    raise HubError(400, f"Unsupported encoding {value.get('encoding')!r} for {value['path']}")
                files[value["path"]] = base64.b64decode(value["content"])
            elif key == "deletedFile":
                if files.pop(value["path"], None) is None:
                    raise HubError(404, f"A file with this name doesn't exist: {value['path']}", "EntryNotFound")
            elif key == "deletedFolder":
                prefix = value["path"].rstrip("/") + "/"
                files = {path: content for path, content in files.items() if not path.startswith(prefix)}
            elif key == "lfsFile":
                if value["oid"] not in self.hub.lfs_objects:
                    raise HubError(400, f"LFS object {value['oid']} of {value['path']} was never uploaded")
                files[value["path"]] = self.hub.lfs_objects[value["oid"]]
            else:
                raise HubError(400, f"Unsupported commit operation {key!r}")
        message = header.get("summary") or "Upload files"
        commit = self.hub.add_commit(repo, branch, message, files)
        self._send_json({
            "success": True,
            "commitOid": commit.sha,
            "commitUrl": f"{self._repo_url(repo)}/commit/{commit.sha}",
            "hookOutput": "",
        })

    def _lfs_batch(self, payload: dict) -> None:
        """Git LFS batch API: an upload URL for each object not stored yet (basic transfer, no verify step)."""
        self._require_token()
        objects = []
        for entry in payload["objects"]:
            answer = {"oid": entry["oid"], "size": entry["size"]}
            if entry["oid"] not in self.hub.lfs_objects:
                answer["actions"] = {"upload": {"href": f"{self.hub.url}/lfs-upload/{entry['oid']}"}}
            objects.append(answer)
        self._send_json({"transfer": "basic", "objects": objects})

    def _lfs_upload(self, oid: str, body: bytes) -> None:
        if hashlib.sha256(body).hexdigest() != oid:
            raise HubError(400, f"The uploaded content does not hash to {oid}")
        self.hub.lfs_objects[oid] = body
        self._send(self.method, 200, b"", {})

    def _create_branch(self, repo: HubRepo, branch: str, payload: dict) -> None:
        if branch in repo.branches:
            raise HubError(409, f"Branch {branch} already exists")
        start = self.hub.get_commit(repo, payload.get("startingPoint") or DEFAULT_BRANCH)
        repo.branches[branch] = start.sha
        self._send_json({})

    def _repo_info(self, repo: HubRepo, revision: str) -> None:
        """`model_info` / `repo_info`: sha of the revision, file list and the README metadata the Hub derives."""
        commit = self.hub.get_commit(repo, revision)
        try:
            card_data = read_front_matter(commit.files.get("README.md"))
        except (yaml.YAMLError, ValueError):
            card_data = {}
        with_blobs = self.query.get("blobs", ["false"])[0].lower() == "true"
        siblings = [
            {"rfilename": path, **({"size": len(content), "blobId": git_blob_sha1(content)} if with_blobs else {})}
            for path, content in sorted(commit.files.items())
        ]
        namespace = repo.repo_id.split("/")[0] if "/" in repo.repo_id else self.hub.user
        info = {
            "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "author": namespace,
            "sha": commit.sha,
            "lastModified": commit.created_at.isoformat().replace("+00:00", "Z"),
            "createdAt": repo.created_at.isoformat().replace("+00:00", "Z"),
            "private": False,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": list(card_data.get("tags") or []),
            "siblings": siblings,
            "cardData": card_data,
        }
        if repo.repo_type == "model":
            info["modelId"] = repo.repo_id
            info["library_name"] = card_data.get("library_name")
            info["pipeline_tag"] = card_data.get("pipeline_tag")
            if "config.json" in commit.files:
                info["config"] = json.loads(commit.files["config.json"])
        self._send_json(info)

    def _tree(self, repo: HubRepo, revision: str, folder: str) -> None:
        commit = self.hub.get_commit(repo, revision)
        recursive = self.query.get("recursive", ["false"])[0].lower() == "true"
        prefix = f"{folder.strip('/')}/" if folder.strip("/") else ""
        entries: dict[str, dict] = {}
        for path, content in sorted(commit.files.items()):
            if not path.startswith(prefix):
                continue
            parts = path[len(prefix):].split("/")
            for depth in range(1, len(parts)):  # the folders on the way to the file
                folder_path = prefix + "/".join(parts[:depth])
                if recursive or depth == 1:
                    entries.setdefault(folder_path, {
                        "type": "directory", "path": folder_path, "oid": hashlib.sha1(folder_path.encode()).hexdigest()
                    })
            if recursive or len(parts) == 1:
                entries[path] = {"type": "file", "path": path, "size": len(content), "oid": git_blob_sha1(content)}
        if prefix and not entries:
            raise HubError(404, f"Entry not found: {folder}", "EntryNotFound", commit.sha)
        self._send_json(list(entries.values()))

    def _resolve(self, method: str, segments: list[str]) -> None:
        """`/{repo_id}/resolve/{revision}/{path}` (and `/datasets/...`, `/spaces/...`): the file at that revision."""
        repo_type = "model"
        if segments and segments[0] in ("datasets", "spaces"):
            repo_type, segments = REPO_TYPES[segments[0]], segments[1:]
        if "resolve" not in segments or method not in ("HEAD", "GET"):
            raise HubError(404, f"No such endpoint: {method} {self.path}")
        marker = segments.index("resolve")
        repo_id, revision, path = "/".join(segments[:marker]), segments[marker + 1], "/".join(segments[marker + 2:])
        repo = self.hub.get_repo(repo_type, repo_id)
        commit = self.hub.get_commit(repo, revision)
        content = commit.files.get(path)
        if content is None:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", commit.sha)
        headers = {
            "ETag": f'"{git_blob_sha1(content)}"',
            "X-Repo-Commit": commit.sha,
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
            "Content-Disposition": f'inline; filename="{path.rsplit("/", 1)[-1]}"',
        }
        status, payload = 200, content
        requested = self.headers.get("Range", "")
        if requested.startswith("bytes="):
            first, _, last = requested[len("bytes="):].partition("-")
            start, end = int(first or 0), min(int(last) if last else len(content) - 1, len(content) - 1)
            status, payload = 206, content[start:end + 1]
            headers["Content-Range"] = f"bytes {start}-{end}/{len(content)}"
        self._send(method, status, payload, headers)

    # ---- answers ---------------------------------------------------------------------------------------------

    def _send(self, method: str, status: int, payload: bytes, headers: dict[str, str]) -> None:
        self.hub.requests.append((method, self.path, status))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(payload)

    def _send_json(self, data, status: int = 200) -> None:
        self._send(self.method, status, json.dumps(data).encode(), {"Content-Type": "application/json"})

    def _send_error(self, method: str, error: HubError) -> None:
        headers = {"Content-Type": "application/json", "X-Error-Message": error.message}
        if error.error_code:
            headers["X-Error-Code"] = error.error_code
        if error.commit:
            headers["X-Repo-Commit"] = error.commit
        body = {"error": error.message, **error.body_fields}
        self._send(method, error.status, json.dumps(body).encode(), headers)
