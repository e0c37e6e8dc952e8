"""download_preset against a local server that answers like the Hugging Face hub (never the real hub).

huggingface-hub's hf_hub_download asks `HEAD {endpoint}/{repo}/resolve/{revision}/{path}` for X-Repo-Commit,
X-Linked-Etag (the file's SHA-256 for LFS files) and X-Linked-Size, then `GET`s the same URL, with
`Range: bytes=N-` when it resumes. The server below serves exactly that, on 127.0.0.1 only.
"""
import argparse
import hashlib
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from comfyui_spacetime.core.download import (
    DOWNLOAD_PRESETS, STAGING_DIR, add_download_command, download_preset, target_path,
)
from comfyui_spacetime.core.errors import SpacetimeError

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    """Files by (repo, path); a request log; optional faults: cut a transfer once, lie about a hash, need a token."""

    def __init__(self):
        self.files: dict[tuple[str, str], bytes] = {}
        self.requests: list[tuple[str, str, str | None]] = []
        self.cut_once: set[str] = set()
        self.wrong_hash: set[str] = set()
        self.token: str | None = None

    def add_preset(self, name: str):
        for f in DOWNLOAD_PRESETS[name].files:
            self.files[(f.repo_id, f.path)] = hashlib.sha256(f.path.encode()).digest() * 64  # 2 KiB, distinct


def make_handler(hub: FakeHub):
    class Handler(BaseHTTPRequestHandler):
        timeout = 5

        def log_message(self, *args):
            pass

        def do_HEAD(self):
            self.respond(send_body=False)

        def do_GET(self):
            self.respond(send_body=True)

        def respond(self, send_body: bool):
            hub.requests.append((self.command, self.path, self.headers.get("Range")))
            body = self.lookup()
            if body is None:
                return
            start = int(self.headers["Range"].removeprefix("bytes=").split("-")[0]) if self.headers["Range"] else 0
            self.send_response(206 if start else 200)
            self.send_file_headers(body, start)
            self.end_headers()
            if send_body:
                self.send_body(body[start:])

        def lookup(self) -> bytes | None:
            parts = self.path.lstrip("/").split("/", 4)  # owner, name, "resolve", revision, path
            if hub.token and self.headers.get("Authorization") != f"Bearer {hub.token}":
                self.send_error(401)
                return None
            body = hub.files.get(("/".join(parts[:2]), parts[-1])) if len(parts) == 5 else None
            if body is None or parts[2:4] != ["resolve", "main"]:
                self.send_error(404)
                return None
            return body

        def send_file_headers(self, body: bytes, start: int):
            path = self.path.split("/resolve/main/", 1)[1]
            digest = hashlib.sha256(body + (b"x" if path in hub.wrong_hash else b"")).hexdigest()
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("X-Linked-Etag", f'"{digest}"')
            self.send_header("X-Linked-Size", str(len(body)))
            self.send_header("ETag", f'"{digest}"')
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(len(body) - start))
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")

        def send_body(self, body: bytes):
            path = self.path.split("/resolve/main/", 1)[1]
            if path in hub.cut_once:  # promise the whole body, send half, hang up: the client must resume
                hub.cut_once.discard(path)
                self.wfile.write(body[: len(body) // 2])
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(body)

    return Handler


def point_hub_at(monkeypatch, endpoint: str):
    """HF_ENDPOINT as a user sets it. huggingface-hub read it once, at import, into the constants behind its own
    calls (URL template, agent registry), which an earlier import may have fixed to the real hub: patch those too."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.delenv("HF_TOKEN", raising=False)


@pytest.fixture
def hub(monkeypatch):
    fake = FakeHub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(fake))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    point_hub_at(monkeypatch, f"http://127.0.0.1:{server.server_address[1]}")
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_preset_files_land_in_comfy_model_folders_through_hub_endpoints_only(hub, tmp_path):
    hub.add_preset("wan2.1-t2v-1.3b")
    paths = download_preset("wan2.1-t2v-1.3b", tmp_path, progress=False)
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == [
        "diffusion_models/wan2.1_t2v_1.3B_fp16.safetensors",
        "text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors",
        "vae/wan_2.1_vae.safetensors",
    ]
    for f, p in zip(DOWNLOAD_PRESETS["wan2.1-t2v-1.3b"].files, paths):
        assert p.read_bytes() == hub.files[(f.repo_id, f.path)]
    assert not (tmp_path / STAGING_DIR).exists()
    file_requests = {(m, p.split("/resolve/")[0]) for m, p, _ in hub.requests if not p.startswith("/api/")}
    assert file_requests == {("HEAD", "/Comfy-Org/Wan_2.1_ComfyUI_repackaged"),
                             ("GET", "/Comfy-Org/Wan_2.1_ComfyUI_repackaged")}
    # besides files, huggingface-hub only asks for its agent registry (best effort, a 404 is fine)
    assert {p for _, p, _ in hub.requests if p.startswith("/api/")} <= {"/api/agent-harnesses"}
    hub.requests.clear()
    assert download_preset("wan2.1-t2v-1.3b", tmp_path, progress=False) == paths
    assert hub.requests == []  # present files are not fetched again


def test_interrupted_transfer_resumes_with_a_range_request(hub, tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 256)  # hand over bytes before the cut (default 10 MB)
    hub.add_preset("wan2.2-vae")
    (file,) = DOWNLOAD_PRESETS["wan2.2-vae"].files
    hub.cut_once.add(file.path)
    (path,) = download_preset("wan2.2-vae", tmp_path, progress=False)
    body = hub.files[(file.repo_id, file.path)]
    assert path.read_bytes() == body
    assert ("GET", f"/{file.repo_id}/resolve/main/{file.path}", f"bytes={len(body) // 2}-") in hub.requests


def test_a_file_that_fails_the_hub_checksum_is_deleted_and_reported(hub, tmp_path):
    hub.add_preset("wan2.1-vae")
    (file,) = DOWNLOAD_PRESETS["wan2.1-vae"].files
    hub.wrong_hash.add(file.path)
    with pytest.raises(SpacetimeError, match="corrupt.*SHA-256"):
        download_preset("wan2.1-vae", tmp_path, progress=False)
    assert not target_path(file, tmp_path).exists()
    assert not any(p.name == file.name for p in tmp_path.rglob("*"))


def test_token_is_sent_and_its_absence_is_explained(hub, tmp_path):
    hub.add_preset("umt5-xxl")
    hub.token = "hf_secret"
    with pytest.raises(SpacetimeError, match="HF_TOKEN"):
        download_preset("umt5-xxl", tmp_path, progress=False)
    (path,) = download_preset("umt5-xxl", tmp_path, token="hf_secret", progress=False)
    assert path.is_file()


def test_no_network_names_the_files_and_where_to_put_them(monkeypatch, tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    point_hub_at(monkeypatch, f"http://127.0.0.1:{closed}")
    with pytest.raises(SpacetimeError) as raised:
        download_preset("wan2.2-ti2v-5b", tmp_path, progress=False)
    message = str(raised.value)
    assert "could not reach" in message
    for f in DOWNLOAD_PRESETS["wan2.2-ti2v-5b"].files:
        assert f"https://huggingface.co/{f.repo_id}/resolve/main/{f.path}" in message
        assert str(target_path(f, tmp_path)) in message


def test_unknown_preset_lists_the_known_ones(tmp_path):
    with pytest.raises(SpacetimeError, match="wan2.1-t2v-1.3b"):
        download_preset("wan3", tmp_path)


def test_cli_lists_presets_and_downloads(hub, tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="spacetime")
    add_download_command(parser.add_subparsers())
    args = parser.parse_args(["download", "--list"])
    assert args.func(args) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in DOWNLOAD_PRESETS) and "vae/wan2.2_vae.safetensors" in listed
    hub.add_preset("wan2.2-vae")
    args = parser.parse_args(["download", "wan2.2-vae", "--models-dir", str(tmp_path)])
    assert args.func(args) == 0
    assert (tmp_path / "vae" / "wan2.2_vae.safetensors").is_file()
