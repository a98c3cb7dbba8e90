"""Cache layout and trust on first download: sha256 and size recorded where none is published."""
from __future__ import annotations

import functools
import http.server
import threading

import pytest

from napari_segany.cli import main
from napari_segany.engine import weights
from napari_segany.engine.embeddings.store import default_store_dir
from napari_segany.engine.errors import CheckpointError
from napari_segany.models.registry import REGISTRY, ModelSpec

PAYLOAD = b"weights of a model without a published digest" * 1000


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv(weights.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv("NAPARI_SEGANY_STORE", raising=False)
    return tmp_path / "cache"


@pytest.fixture
def server(tmp_path):
    """An HTTP server on localhost serving tmp_path/served (the 'official' release)."""
    served = tmp_path / "served"
    served.mkdir()
    (served / "efficient_sam_vitt.pt").write_bytes(PAYLOAD)
    handler = functools.partial(_QuietHandler, directory=str(served))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/efficient_sam_vitt.pt"
    httpd.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def unpublished(server, monkeypatch):
    """efficient_sam_vitt (no published sha256) served from localhost."""
    spec = REGISTRY["efficient_sam_vitt"]
    assert spec.sha256 is None
    local = ModelSpec(**{**spec.__dict__, "urls": (server,)})
    monkeypatch.setitem(REGISTRY, spec.name, local)
    return local


def test_cache_root_holds_weights_and_embeddings(root):
    assert weights.cache_dir() == root / "weights"
    assert weights.cached_path("mobile_sam") == root / "weights" / "mobile_sam.pt"
    assert default_store_dir() == root / "embeddings"


def test_weights_in_the_old_place_are_found(root):
    root.mkdir(parents=True)
    (root / "FastSAM-x.pt").write_bytes(b"x")  # where an older version put it
    assert weights.cached_path("fastsam_x") == root / "FastSAM-x.pt"
    assert weights.weights_present("fastsam_x")


def test_first_download_records_sha256_and_size(root, unpublished, server):
    assert weights.verification(unpublished) == "unrecorded"
    path = weights.fetch_checkpoint(unpublished, progress=False)
    record = weights.read_ledger(path.parent)[path.name]
    assert record.sha256 == weights.sha256_of(path) and record.size == len(PAYLOAD)
    assert record.source == server
    assert weights.verification(unpublished) == "recorded"
    assert weights.fetch_checkpoint(unpublished, progress=False) == path  # verified, reused


def test_a_file_that_changed_after_its_first_download_is_refused(root, unpublished):
    path = weights.fetch_checkpoint(unpublished, progress=False)
    path.write_bytes(PAYLOAD[:-1] + b"!")  # same size, other content
    with pytest.raises(CheckpointError, match="recorded at its first download"):
        weights.fetch_checkpoint(unpublished, progress=False)
    path.write_bytes(PAYLOAD[:100])
    with pytest.raises(CheckpointError, match="truncated"):
        weights.fetch_checkpoint(unpublished, progress=False)


def test_a_file_put_in_the_cache_by_hand_is_recorded_at_first_use(root):
    folder = root / "weights"
    folder.mkdir(parents=True)
    (folder / "FastSAM-x.pt").write_bytes(PAYLOAD)
    weights.fetch_checkpoint("fastsam_x")
    assert weights.read_ledger(folder)["FastSAM-x.pt"].source == "found in the cache folder"


def test_models_says_how_each_file_is_checked(root, unpublished, capsys):
    weights.fetch_checkpoint(unpublished, progress=False)
    assert main(["models"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[2:]}
    assert "sha256 published" in lines["mobile_sam"]
    assert "sha256 recorded at first download" in lines["efficient_sam_vitt"]
    assert "no published sha256: recorded at first download" in lines["fastsam_x"]


def test_download_hashes_prints_them_for_comparison(root, unpublished, capsys):
    assert main(["download", "--hashes", "efficient_sam_vitt"]) == 0
    out = capsys.readouterr().out
    path = weights.cached_path("efficient_sam_vitt")
    assert weights.sha256_of(path) in out and str(len(PAYLOAD)) in out and "recorded" in out
    assert main(["download", "--hashes"]) == 0  # no names: every cached file
    assert weights.sha256_of(path) in capsys.readouterr().out
